"""strongroom: an archive for a company's email and chat, built on Kafka, Parquet and OpenSearch.

This package is the shared runtime both sides use: configuration, errors, storage, client
factories and the CLI root. Producers and consumers import it and `schemas`, never each other.
"""

__version__ = "0.1.0"
