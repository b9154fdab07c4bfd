"""One measurement: a stage run in a subprocess of its own, so its CPU and peak memory are its own.

The parent calls `run_stage(name, args)`; the child (`python -m strongroom.bench.measure NAME
JSON`) sets up whatever the stage needs (untimed), then the stage calls `Clock.start()` when its
first message is handled and `Clock.stop()` when the last is durable, so a consumer group's join
and a client's imports are not measured. CPU is the process's user + system time between the two
(librdkafka's and Arrow's threads included), peak RSS is the process's ru_maxrss.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from strongroom.errors import StrongroomError


@dataclass
class Result:
    name: str
    messages: int
    bytes: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_1k(self) -> float:
        return self.cpu_seconds / self.messages * 1000 if self.messages else 0.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Wall and CPU time from the first message to the last, once each."""

    def __init__(self) -> None:
        self.t0 = self.t1 = None
        self.cpu0 = self.cpu1 = 0.0

    def start(self) -> None:
        if self.t0 is None:
            self.t0, self.cpu0 = time.perf_counter(), _cpu()

    def stop(self) -> None:
        self.t1, self.cpu1 = time.perf_counter(), _cpu()

    def result(self, name: str, messages: int, nbytes: int, **extra: Any) -> Result:
        if self.t0 is None or self.t1 is None:
            raise StrongroomError(f"{name}: the stage never started or never finished")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
        return Result(name, messages, nbytes, self.t1 - self.t0, self.cpu1 - self.cpu0, peak, extra)


def timed(name: str, messages: int, nbytes: int, work: Callable[[], Any], **extra: Any) -> Result:
    """A stage whose whole call is the measured work."""
    clock = Clock()
    clock.start()
    out = work()
    clock.stop()
    if isinstance(out, dict):
        extra.update(out)
    return clock.result(name, messages, nbytes, **extra)


def run_stage(name: str, args: dict[str, Any], timeout: float = 900.0) -> Result:
    """Run stage `name` of stages.STAGES in a fresh interpreter and return its Result."""
    proc = subprocess.run([sys.executable, "-m", "strongroom.bench.measure", name, json.dumps(args)],
                          capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise StrongroomError(f"bench stage {name} failed (exit {proc.returncode}): {tail}")
    return Result(**json.loads(lines[-1]))


def main() -> None:
    from strongroom.bench.stages import STAGES

    name, args = sys.argv[1], json.loads(sys.argv[2])
    result = STAGES[name](**args)
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
