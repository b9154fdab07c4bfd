"""The peer, run by the virtualenv of Quix Streams (never imported by strongroom, which does not have it).

What a Quix Streams user would write to archive our topic as Parquet: an Application, the topic
with Quix's own AvroDeserializer reading the Confluent framing through the same schema registry
(fastavro underneath, records to dicts), and its LocalFileSink in Parquet format with the same
codec as ours (zstd; its default would be snappy). Quix defaults otherwise (commit every 5 s).
Prints one JSON line: messages, bytes, seconds, cpu_seconds, peak_rss_mb, from the first message
to the run's end, when the last checkpoint has flushed the sink.
"""

import json
import resource
import sys
import time


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    args = json.loads(sys.argv[1])
    from quixstreams import Application
    from quixstreams.models.serializers.avro import AvroDeserializer
    from quixstreams.models.serializers.schema_registry import SchemaRegistryClientConfig
    from quixstreams.sinks.community.file.formats import ParquetFormat
    from quixstreams.sinks.community.file.local import LocalFileSink

    with open(args["schema"], encoding="utf-8") as handle:
        schema = json.load(handle)
    app = Application(broker_address=args["broker"], consumer_group=args["group"],
                      auto_offset_reset="earliest", loglevel="WARNING")
    deserializer = AvroDeserializer(schema, schema_registry_client_config=SchemaRegistryClientConfig(url=args["registry"]))
    topic = app.topic(args["topic"], value_deserializer=deserializer)
    sink = LocalFileSink(directory=args["out"], format=ParquetFormat(compression="zstd"))
    started = {}

    def first(value):
        if not started:
            started.update(t=time.perf_counter(), cpu=cpu())
        return value

    sdf = app.dataframe(topic)
    sdf = sdf.apply(first)
    sdf.sink(sink)
    app.run(count=args["messages"])
    seconds, cpu_seconds = time.perf_counter() - started["t"], cpu() - started["cpu"]
    print(json.dumps({"name": "quix", "messages": args["messages"], "bytes": args["bytes"], "seconds": seconds,
                      "cpu_seconds": cpu_seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "extra": {"quixstreams": __import__("quixstreams").__version__}}))


if __name__ == "__main__":
    main()
