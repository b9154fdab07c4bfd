"""Consumers: one consumer group per sink (archiver -> Parquet warehouse, indexer -> OpenSearch)."""
