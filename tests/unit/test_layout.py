"""The dependency direction is visible and kept: producers -> schemas <- consumers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _imports(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add((str(path.relative_to(REPO)), node.module.split(".")[0]))
            elif isinstance(node, ast.Import):
                found.update((str(path.relative_to(REPO)), a.name.split(".")[0]) for a in node.names)
    return found


@pytest.mark.parametrize("package, forbidden", [
    ("producers", {"consumers"}), ("consumers", {"producers"}), ("schemas", {"producers", "consumers", "strongroom"}),
])
def test_sides_never_import_each_other(package, forbidden):
    """Producers never import consumers, consumers never import producers, schemas import neither."""
    bad = sorted((f, m) for f, m in _imports(package) if m in forbidden)
    assert bad == []


def test_core_modules_do_not_depend_on_either_side():
    """The shared runtime imports producers or consumers only in the CLI (root and command groups), the demo and the bench."""
    allowed = {"strongroom/cli.py", "strongroom/demo.py"}
    bad = sorted((f, m) for f, m in _imports("strongroom") if m in {"producers", "consumers"} and f not in allowed
                 and not f.startswith(("strongroom/commands/", "strongroom/bench/")))
    assert bad == []
