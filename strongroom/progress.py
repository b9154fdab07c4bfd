"""Progress on a terminal (items/s and bytes); silent when output is piped or in CI."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def ingest_progress(kind: str) -> Iterator[Callable[[int, int], None] | None]:
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn,
                               TimeElapsedColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.fields.get("items", 0) / task.elapsed if task.elapsed else 0.0
            return Text(f"{task.fields.get('items', 0):,} items  {speed:,.0f}/s")

    with Progress(SpinnerColumn(), TextColumn(f"ingest {kind}"), BarColumn(), RateColumn(), DownloadColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(kind, total=None, items=0)
        state = {"items": 0}

        def advance(items: int, size: int) -> None:
            state["items"] += items
            progress.update(task, advance=size, items=state["items"])

        yield advance
