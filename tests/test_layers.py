"""No package imports "upward": cli → config → proxy → shared → accounts → health → credentials →
routing/usage/net → stats."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import qcc

ROOT = Path(qcc.__file__).parent
# What each lower layer must never import (lazy imports inside functions included).
FORBIDDEN = {
    "shared": ("qcc.proxy", "qcc.cli"),
    "accounts": ("qcc.shared", "qcc.proxy", "qcc.cli"),
    "health": ("qcc.accounts", "qcc.shared", "qcc.proxy", "qcc.cli"),
    "credentials": ("qcc.accounts", "qcc.health", "qcc.shared", "qcc.proxy", "qcc.cli"),
    "routing": (
        "qcc.accounts",
        "qcc.health",
        "qcc.credentials",
        "qcc.shared",
        "qcc.proxy",
        "qcc.cli",
    ),
    "usage": (
        "qcc.accounts",
        "qcc.health",
        "qcc.credentials",
        "qcc.shared",
        "qcc.proxy",
        "qcc.cli",
    ),
    "net": (
        "qcc.accounts",
        "qcc.health",
        "qcc.credentials",
        "qcc.routing",
        "qcc.usage",
        "qcc.shared",
        "qcc.proxy",
        "qcc.cli",
    ),
    "stats.py": ("qcc.accounts", "qcc.health", "qcc.routing", "qcc.proxy", "qcc.cli"),
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("layer", list(FORBIDDEN))
def test_no_upward_imports(layer: str) -> None:
    target = ROOT / layer
    files = [target] if target.is_file() else sorted(target.rglob("*.py"))
    assert files
    upward = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in imported(path)
        if name.startswith(FORBIDDEN[layer])
    }
    assert not upward
