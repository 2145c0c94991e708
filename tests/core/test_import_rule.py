"""The public-API rule, enforced: plugins and the documented examples import only ``prefkit`` (names in its
public list) and ``prefkit.testing``; never a prefkit submodule, never another plugin."""

from __future__ import annotations

import ast
from pathlib import Path

import prefkit

ROOT = Path(__file__).resolve().parents[2]
CHECKED = [ROOT / "plugins", ROOT / "docs" / "examples"]
ALLOWED_MODULES = {"prefkit", "prefkit.testing"}


def violations(source: str, own_package: str | None = None) -> list[str]:
    """What in ``source`` breaks the rule (one line each, with the line number)."""
    public = set(prefkit.__all__)
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            mods = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mods = [(node.module, [a.name for a in node.names])]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "prefkit":
            if node.attr not in public and node.attr != "testing":
                out.append(f"line {node.lineno}: prefkit.{node.attr} is not a public name")
            continue
        else:
            continue
        for mod, names in mods:
            top = mod.split(".", 1)[0]
            if top == "prefkit":
                if mod not in ALLOWED_MODULES:
                    out.append(f"line {node.lineno}: imports {mod} (a private module; use `prefkit` names)")
                elif mod == "prefkit" and names:
                    out += [f"line {node.lineno}: `from prefkit import {n}`: not a public name"
                            for n in names if n not in public and n != "testing"]
            elif top.startswith("prefkit_") and own_package and top != own_package:
                out.append(f"line {node.lineno}: imports another plugin ({mod})")
    return out


def _files():
    for base in CHECKED:
        yield from sorted(base.rglob("*.py"))


def test_plugins_and_examples_use_only_the_public_api():
    problems = []
    for path in _files():
        rel = path.relative_to(ROOT)
        own = rel.parts[1] if rel.parts[0] == "plugins" else rel.parts[-2] if len(rel.parts) > 1 else None
        problems += [f"{rel}: {v}" for v in violations(path.read_text(), own)]
    assert not problems, "\n".join(problems)
    assert sum(1 for _ in _files()) > 20  # the walk really saw the plugins


def test_the_checker_catches_each_kind_of_breach():
    bad = """
import prefkit.runs
from prefkit.console import info
from prefkit import no_such_name, Run
from prefkit_nppl import models
import prefkit
x = prefkit._LAZY
y = prefkit.Run
from prefkit.testing import cli
from . import sibling
"""
    found = violations(bad, own_package="prefkit_persona")
    assert len(found) == 5, found
    assert any("prefkit.runs" in f for f in found) and any("prefkit.console" in f for f in found)
    assert any("no_such_name" in f for f in found) and any("another plugin" in f for f in found)
    assert any("prefkit._LAZY" in f for f in found)


def test_public_list_is_explicit_and_documented():
    doc = prefkit.__doc__ or ""
    assert "prefkit.testing" in doc and "implementation details" in doc
    for name in ("Run", "RunStatus", "ExitCode", "exit_code", "command_exit", "runs_dir", "slug", "mean_se", "rich_console",
                 "merge_usage", "check_limit", "info", "warn", "print_json", "print_table", "progress", "opt",
                 "with_options", "RunOptions", "PreferenceRecord", "load_records", "judge_pairwise", "registry",
                 "TrainConfig", "hookimpl", "hookspec"):
        assert name in prefkit.__all__, name
    guide = (ROOT / "docs" / "plugin-authors.md").read_text()
    assert "implementation details" in guide and "tests/core/test_import_rule.py" in guide


def test_no_public_name_is_shadowed_by_a_submodule():
    """``prefkit.console`` is bound to the submodule as soon as anything imports it, so a public name equal
    to a submodule's name would silently change meaning; only module namespaces (``plots``) may do that."""
    import importlib
    import importlib.util

    for name in prefkit.__all__:
        if importlib.util.find_spec(f"prefkit.{name}") is not None:
            importlib.import_module(f"prefkit.{name}")
            assert getattr(prefkit, name) is importlib.import_module(f"prefkit.{name}"), name
            assert prefkit._LAZY[name] == f"prefkit.{name}", f"{name} names both a submodule and something else"
