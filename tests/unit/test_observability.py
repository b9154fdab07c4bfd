"""Metrics and health endpoint, and JSON logs."""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request

from strongroom import observability


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_metrics_and_health_are_served():
    """/metrics speaks the Prometheus text format; /healthz turns 503 with the reason when unhealthy."""
    state = {"problem": None}
    port = _free_port()
    server = observability.serve(port, lambda: state["problem"])
    try:
        observability.RECORDS_OUT.labels("unit-test").inc(3)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'strongroom_records_out_total{sink="unit-test"} 3.0' in text
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read() == b"ok\n"
        state["problem"] = "archiver paused 12s: S3 down"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
            raise AssertionError("expected 503")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503 and b"S3 down" in exc.read()
    finally:
        server.shutdown()


def test_json_logs_are_one_object_per_line():
    """The JSON formatter writes time, level, logger and message as one parseable object."""
    record = logging.LogRecord("strongroom.consumers", logging.WARNING, __file__, 1, "paused %s", ("archiver",), None)
    entry = json.loads(observability.JsonFormatter().format(record))
    assert (entry["level"], entry["logger"], entry["message"]) == ("warning", "strongroom.consumers", "paused archiver")
    assert entry["time"][:2] == "20"
