"""`strongroom bench`: the pipeline measured beside its own ceilings and a peer, in one run.

    corpus.py    the generated mailbox (cached) and its pre-encoded records
    measure.py   one stage's clock, CPU and peak memory, inside its own subprocess
    ceilings.py  the raw speed of each part: produce, consume, Parquet, bulk, parse
    stages.py    strongroom's own stages: ingest, archive, index, end to end, query
    peer.py      Quix Streams' FileSink, in a virtualenv of its own
    report.py    the table, the ratios and the JSON

Benchmarks are not tests: nothing here asserts a time.
"""
