"""Producers: read a source, store originals in the blob store, produce Avro records to Kafka."""
