"""OpenSearch: the local node, through opensearch-py."""

from __future__ import annotations

from opensearchpy import helpers

from strongroom.clients import opensearch_client


def test_template_bulk_search_delete(settings):
    """An index made from a template gets its mapping; bulk-indexed documents are found, then deleted."""
    client = opensearch_client(settings)
    prefix = settings.index_prefix("probe")
    client.indices.put_index_template(name=prefix, body={
        "index_patterns": [f"{prefix}-*"], "priority": 100,
        "template": {"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                     "mappings": {"properties": {"sender": {"type": "keyword"}, "body": {"type": "text"}}}}})
    index = f"{prefix}-2026.12"
    docs = [{"_index": index, "_id": str(i), "_source": {"sender": f"u{i}@example.com", "body": f"quarterly report {i}"}}
            for i in range(50)]
    ok, errors = helpers.bulk(client, docs, refresh="wait_for")
    assert (ok, errors) == (50, [])
    mapping = client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert mapping["sender"]["type"] == "keyword"
    hits = client.search(index=index, body={"query": {"bool": {"must": {"match": {"body": "report"}},
                                                                "filter": {"term": {"sender": "u7@example.com"}}}}})
    assert [h["_id"] for h in hits["hits"]["hits"]] == ["7"]
    assert client.count(index=index)["count"] == 50
    client.indices.delete(index=index)
    client.indices.delete_index_template(name=prefix)
    assert not client.indices.exists(index=index)
