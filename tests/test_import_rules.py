"""The import rules of docs/architecture.md, read from the source: a broken rule fails here, not in review.

Every module's imports are parsed (``ast``), relative ones resolved, so the
check needs nothing importable and sees imports inside functions too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bridge", "consoles", "models")
#: What the pure policy may import: no IO, no clock, no event loop, no logging.
POLICY_MAY_IMPORT = {"__future__", "math", "dataclasses", "typing", "enum", "ailive.bridge.control",
                     "ailive.consoles.errors", "ailive.consoles.faderlaw", "ailive.consoles.tomlschema",
                     "ailive.bridge.policy_settings"}
#: Names the policy may not call: they read a clock or touch a file.
POLICY_MAY_NOT_CALL = {"open", "print", "input"}


def modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(("ailive", *parts[:-1])) if parts[-1] == "__init__" else ".".join(("ailive", *parts))
            found.append((name, path))
    return found


def imports(name: str, path: Path, *, top_level_only: bool = False) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import in a module, relative ones made absolute."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # a guarded import (``if TYPE_CHECKING``, ``try``) still runs at import time
        nodes = [n for stmt in tree.body for n in ast.walk(stmt) if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        nodes += [n for stmt in tree.body if isinstance(stmt, ast.ClassDef) for n in stmt.body
                  if isinstance(n, (ast.Import, ast.ImportFrom))]
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            if node.module is None:  # ``from . import policy``: the submodules too
                found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _type_checking_only(path: Path) -> set[int]:
    """Lines of imports under ``if TYPE_CHECKING:``, which never run."""
    tree = ast.parse(path.read_text())
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            lines |= {n.lineno for child in node.body for n in ast.walk(child) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return lines


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def broken(rule: str, where: str, module: str, line: int) -> str:
    return f"{where}:{line} imports {module}: {rule}"


@pytest.mark.parametrize("package, forbidden", [
    ("ailive.consoles", ("ailive.bridge", "ailive.models")),
    ("ailive.models", ("ailive.bridge", "ailive.consoles")),
])
def test_the_lower_layers_know_nothing_of_the_others(package, forbidden):
    errors = [broken(f"{package} knows nothing of {bad}", str(path.relative_to(ROOT)), module, line)
              for name, path in modules() if within(name, package)
              for module, line in imports(name, path) for bad in forbidden if within(module, bad)]
    assert not errors, "\n".join(errors)


#: Inside the bridge: (what, the modules it covers, what they may not import, what they may import all the same).
BRIDGE_RULES = [
    ("nothing outside the command line imports it", lambda n: not within(n, "ailive.bridge.cli"),
     ("ailive.bridge.cli",), ()),
    ("only the command line starts offline runs or drafts show files",
     lambda n: not any(within(n, p) for p in ("ailive.bridge.cli", "ailive.bridge.offline", "ailive.bridge.init")),
     ("ailive.bridge.offline", "ailive.bridge.init"), ()),
    ("audio sources know nothing of the rest of the bridge", lambda n: within(n, "ailive.bridge.audio"),
     ("ailive.bridge",), ("ailive.bridge.audio",)),
    ("remote control reaches the engine, never audio or the runs", lambda n: within(n, "ailive.bridge.remote"),
     ("ailive.bridge.audio", "ailive.bridge.rig", "ailive.bridge.runner", "ailive.bridge.restore", "ailive.bridge.ui"), ()),
    ("the core (engine, policy, journal, show) knows no remote control and no runs",
     lambda n: n in CORE, ("ailive.bridge.remote", "ailive.bridge.rig", "ailive.bridge.runner", "ailive.bridge.restore",
                           "ailive.bridge.ui"), ("ailive.bridge.remote.mqtt_settings",)),
]
CORE = {f"ailive.bridge.{m}" for m in ("engine", "policy", "policy_settings", "journal", "control", "jsonsafe", "show")}


@pytest.mark.parametrize("rule, covers, forbidden, allowed", BRIDGE_RULES, ids=[r[0] for r in BRIDGE_RULES])
def test_the_bridge_layers(rule, covers, forbidden, allowed):
    errors = [broken(rule, str(path.relative_to(ROOT)), module, line)
              for name, path in modules() if within(name, "ailive.bridge") and covers(name)
              for module, line in imports(name, path)
              if any(within(module, bad) for bad in forbidden) and not any(within(module, ok) for ok in allowed)
              and module != "ailive.bridge"]
    assert not errors, "\n".join(errors)


def test_nothing_at_run_time_loads_training_or_torch():
    """Only training (models.train) and the data tools may import torch; the run-time path imports neither at load."""
    offline = ("ailive.models.train", "ailive.models.data")
    errors = []
    for name, path in modules():
        if any(within(name, o) for o in offline):
            continue
        skip = _type_checking_only(path)
        for module, line in imports(name, path, top_level_only=True):
            if line not in skip and (within(module, "torch") or within(module, "ailive.models.train")):
                errors.append(broken("nothing at run time imports torch or models.train", str(path.relative_to(ROOT)),
                                     module, line))
    assert not errors, "\n".join(errors)


def test_the_policy_does_no_io_and_reads_no_clock():
    path = ROOT / "bridge" / "policy.py"
    skip = _type_checking_only(path)
    errors = [broken("the policy imports only pure modules", "bridge/policy.py", module, line)
              for module, line in imports("ailive.bridge.policy", path) if module not in POLICY_MAY_IMPORT and line not in skip]
    calls = [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name) and node.func.id in POLICY_MAY_NOT_CALL]
    errors += [f"bridge/policy.py:{c.lineno} calls {c.func.id}: the policy does no IO" for c in calls]  # type: ignore[attr-defined]
    assert not errors, "\n".join(errors)
    assert "ailive.bridge.control" in {m for m, _ in imports("ailive.bridge.policy", path)}  # the parser sees it


def test_the_rules_bite():
    """A rule is only worth having if breaking it fails: the parser finds a forbidden import in a made-up module."""
    fake = ROOT / "consoles" / "__init__.py"
    found = imports("ailive.consoles", fake)
    assert all(not within(m, "ailive.bridge") for m, _ in found)
    source = "from ..bridge import engine\nimport torch\nfrom .. import models\n"
    tree_path = Path(__file__).with_name("_import_rule_probe.py")
    try:
        tree_path.write_text(source)
        probe = imports("ailive.consoles.probe", tree_path)
    finally:
        tree_path.unlink()
    assert {("ailive.bridge", 1), ("torch", 2), ("ailive.models", 3)} <= set(probe)
