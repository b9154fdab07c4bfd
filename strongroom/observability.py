"""Metrics (Prometheus text format), a health endpoint for orchestrators, and JSON logs.

`serve(port, health)` answers on 127.0.0.1 (or STRONGROOM_METRICS_HOST):
  /metrics  the counters and gauges below, for Prometheus to scrape;
  /healthz  200 "ok" while `health()` returns None, else 503 with its reason (for liveness
            and readiness probes: a sink paused on a dead service reports it here).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry()
RECORDS_IN = Counter("strongroom_records_in", "Records consumed from Kafka", ["sink", "topic"], registry=REGISTRY)
RECORDS_OUT = Counter("strongroom_records_out", "Records made durable (rows archived, documents indexed)",
                      ["sink"], registry=REGISTRY)
DEAD_LETTERS = Counter("strongroom_dead_letters", "Records sent to the dead-letter topic", ["sink"], registry=REGISTRY)
FLUSHES = Counter("strongroom_flushes", "Checkpoints that made a partition durable and committed it", ["sink"],
                  registry=REGISTRY)
FLUSH_SECONDS = Histogram("strongroom_flush_seconds", "Time to make one partition's batch durable", ["sink"],
                          registry=REGISTRY, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
ERRORS = Counter("strongroom_errors", "Failed checkpoints (a service down); each is retried", ["sink"],
                 registry=REGISTRY)
LAG = Gauge("strongroom_lag", "Records between the committed offset and the end of the partition",
            ["sink", "topic", "partition"], registry=REGISTRY)
PAUSED = Gauge("strongroom_paused", "1 while the sink is paused waiting for its service", ["sink"], registry=REGISTRY)


def serve(port: int, health: Callable[[], str | None]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            if self.path.startswith("/metrics"):
                self._answer(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                problem = health()
                self._answer(503 if problem else 200, (problem or "ok").encode() + b"\n", "text/plain")
            else:
                self._answer(404, b"try /metrics or /healthz\n", "text/plain")

        def _answer(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:  # scrapes every few seconds would drown the log
            pass

    server = ThreadingHTTPServer((os.environ.get("STRONGROOM_METRICS_HOST", "127.0.0.1"), port), Handler)
    threading.Thread(target=server.serve_forever, name="strongroom-metrics", daemon=True).start()
    return server


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname.lower(),
                 "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("strongroom")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
