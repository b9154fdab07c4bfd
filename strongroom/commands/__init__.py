"""Command groups that live in modules of their own, one per capability (journaling, export, ...).

Each module here imports `app`, `ingest_app` or `settings_of` from `strongroom.cli` and declares
its commands with the same decorators; `strongroom.cli` imports every module of this package
once its own commands exist. Heavy imports stay inside the command functions, so `--help` is fast.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        importlib.import_module(f"{__name__}.{module}")
