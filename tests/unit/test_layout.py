"""The layout is the architecture: import directions between packages and groups, read from source.

Every `import` in the tree counts, including those inside functions, so a deferred import cannot
hide a wrong direction. The rules are ARCHITECTURE.md's; this test is where they are enforced.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT

SOURCE_ROOTS = ("stockpred", "web", "tasks", "workers", "tools")
DOMAIN = ("stockpred.jobs", "stockpred.market", "stockpred.ml", "stockpred.storage")
PLUMBING = ("stockpred.infra", "stockpred.telemetry")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> Iterator[Path]:
    yield ROOT / "celeryconfig.py"
    for top in SOURCE_ROOTS:
        yield from sorted((ROOT / top).rglob("*.py"))


def imports_of(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import statement in the file of `module`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            yield node.lineno, base
            for alias in node.names:  # `from stockpred import ops` imports stockpred.ops
                yield node.lineno, f"{base}.{alias.name}"


def within(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violation(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when it may."""
    if within(imported, "tools") and not within(importer, "tools"):
        return "tools/ holds build-time scripts that nothing imports"
    if within(importer, "stockpred"):
        if within(imported, "web", "tasks", "workers", "celeryconfig"):
            return "the domain imports neither web, tasks, workers nor celeryconfig"
        if within(imported, "stockpred.ops") and not within(importer, "stockpred.ops"):
            return "nothing imports stockpred.ops (it is a composition root)"
        if within(importer, *PLUMBING) and within(imported, *DOMAIN):
            return "infra and telemetry import no domain package"
    if within(importer, "web"):
        if within(imported, "tasks", "workers"):
            # celeryconfig is allowed: the web's Celery client shares its routes and queues.
            return "the web sends tasks by name and never imports task or worker code"
        if within(imported, "stockpred.ops"):
            return "nothing imports stockpred.ops"
        if within(imported, "tensorflow", "keras"):
            return "the web never imports TensorFlow"
    if within(importer, "tasks") and within(imported, "web", "workers", "stockpred.ops"):
        return "tasks import only the domain"
    if within(importer, "workers") and within(imported, "web", "stockpred.ops"):
        return "workers import tasks and the domain, never the web or ops"
    return None


def all_violations() -> list[str]:
    found = []
    for path in source_files():
        importer = module_name(path)
        for line, imported in imports_of(path, importer):
            why = violation(importer, imported)
            if why:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {imported}: {why}")
    return found


def test_every_import_follows_the_layout_directions() -> None:
    assert all_violations() == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("stockpred.ml.training", "web.errors"),
        ("stockpred.infra.counters", "stockpred.ml.registry"),
        ("stockpred.telemetry.queue_facts", "stockpred.jobs.records"),
        ("stockpred.market.service", "stockpred.ops.cli"),
        ("web.api.models", "tasks.maintenance"),
        ("web.app", "stockpred.ops.procset"),
        ("tasks.inference", "workers.app"),
        ("workers.app", "web.app"),
        ("stockpred.ops.cli", "tools.build_embedded"),
    ],
)
def test_the_rules_catch_each_wrong_direction(importer: str, imported: str) -> None:
    assert violation(importer, imported) is not None


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("stockpred.ops.cli", "stockpred.ml.predict"),
        ("stockpred.ml.registry", "stockpred.infra.files"),
        ("stockpred.telemetry.queue_facts", "stockpred.queues"),
        ("web.api.models", "stockpred.ml.registry"),
        ("workers.app", "tasks.inference"),
        ("tasks.training", "stockpred.ml.training"),
    ],
)
def test_the_rules_allow_each_right_direction(importer: str, imported: str) -> None:
    assert violation(importer, imported) is None


def test_the_import_reader_sees_deferred_and_relative_imports(tmp_path: Path) -> None:
    sample = tmp_path / "training.py"
    sample.write_text(
        "from . import features\n"
        "from ..storage.backup import run\n"
        "def fit():\n"
        "    import web.errors\n"
    )
    found = {name for _, name in imports_of(sample, "stockpred.ml.training")}
    assert {"stockpred.ml.features", "stockpred.storage.backup", "web.errors"} <= found
    assert module_name(ROOT / "stockpred" / "ml" / "__init__.py") == "stockpred.ml"
