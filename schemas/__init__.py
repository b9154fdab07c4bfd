"""The contract between producers and consumers: Avro schemas, record helpers and serde."""
