"""Plugin manager: discovery, allowlist, broken plugins, clashes, tracing, the example plugin."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .helpers import as_json, make_dist, run_prefkit

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "prefkit-hello"

GOOD = """
import prefkit

class Src(prefkit.DatasetSource):
    def load_rows(self, config=None, split=None, *, data_dir=None):
        return [{"prompt": "p", "chosen": "c", "rejected": "r"}]

@prefkit.hookimpl
def register_datasets(register):
    register(Src(name="good-data"))

@prefkit.hookimpl
def register_commands(app):
    @app.command("good-cmd")
    def good_cmd():
        "A command from the good plugin."
        print("good!")
"""


def test_builtin_plugins_load_through_entry_points():
    data = as_json(run_prefkit("plugins", "--json"))
    names = {p["name"]: p for p in data}
    assert {"persona", "nppl"} <= set(names)
    for name in ("persona", "nppl"):
        assert names[name]["source"] == "entry-point"
        assert "error" not in names[name]


def test_default_plugins_listed_with_all():
    data = as_json(run_prefkit("plugins", "--all", "--json"))
    sources = [p for p in data if p["source"] == "default"]
    assert any("datasets" in p["registered"] and "file" in p["registered"]["datasets"] for p in sources)


def test_example_plugin_discovered_with_command(tmp_path):
    # install the example exactly as pip would lay it out: its package + a dist-info with its entry points
    site = tmp_path / "site"
    make_dist(site, "prefkit-hello", {"hello": "prefkit_hello"}, {})
    (site / "prefkit_hello").symlink_to(EXAMPLE / "prefkit_hello")
    data = as_json(run_prefkit("plugins", "--json", site=site))
    hello = next(p for p in data if p["name"] == "hello")
    assert hello["version"] == "1.0"
    assert set(hello["hooks"]) == {"register_datasets", "register_persona_strategies", "register_commands"}
    assert hello["registered"] == {"datasets": ["hello-prefs"], "persona_strategies": ["echo"]}
    help_text = run_prefkit("--help", site=site).stdout
    assert "hello" in help_text
    rows = as_json(run_prefkit("hello", "--json", "--limit", "2", site=site))
    assert [r["row_id"] for r in rows] == ["0", "1"]
    assert rows[0]["prompt"] == "How do I boil an egg?"


def test_example_pyproject_declares_entry_point():
    import tomllib

    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["prefkit"] == {"hello": "prefkit_hello"}


def test_broken_import_is_one_warning(tmp_path):
    site = tmp_path / "site"
    make_dist(site, "prefkit-broken", {"broken": "broken_plugin"}, {"broken_plugin": "raise RuntimeError('boom at import')"})
    make_dist(site, "prefkit-good", {"good": "good_plugin"}, {"good_plugin": GOOD})
    proc = run_prefkit("datasets", "--json", site=site)
    assert proc.returncode == 0
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "'broken'" in warnings[0] and "boom at import" in warnings[0]
    assert "good-data" in [d["name"] for d in as_json(proc)]


def test_plugin_raising_in_hook_is_isolated(tmp_path):
    site = tmp_path / "site"
    bad_hook = """
import prefkit

@prefkit.hookimpl
def register_datasets(register):
    raise ValueError("bad registration")
"""
    make_dist(site, "prefkit-badhook", {"badhook": "badhook"}, {"badhook": bad_hook})
    make_dist(site, "prefkit-good", {"good": "good_plugin"}, {"good_plugin": GOOD})
    proc = run_prefkit("datasets", "--json", site=site)
    assert proc.returncode == 0, proc.stderr
    assert "'badhook' raised in register_datasets" in proc.stderr
    assert "bad registration" in proc.stderr
    assert "good-data" in [d["name"] for d in as_json(proc)]
    # the good plugin's command still works
    assert run_prefkit("good-cmd", site=site).stdout.strip() == "good!"


def test_broken_command_hook_keeps_cli_alive(tmp_path):
    site = tmp_path / "site"
    code = """
import prefkit

@prefkit.hookimpl
def register_commands(app):
    raise ImportError("missing optional dependency")
"""
    make_dist(site, "prefkit-badcmd", {"badcmd": "badcmd"}, {"badcmd": code})
    proc = run_prefkit("--help", site=site)
    assert proc.returncode == 0
    assert "badcmd" in proc.stderr and "missing optional dependency" in proc.stderr


def test_allowlist(tmp_path):
    site = tmp_path / "site"
    make_dist(site, "prefkit-good", {"good": "good_plugin"}, {"good_plugin": GOOD})
    only_good = as_json(run_prefkit("plugins", "--json", site=site, env={"PREFKIT_LOAD_PLUGINS": "good"}))
    assert [p["name"] for p in only_good] == ["good"]
    by_dist = as_json(run_prefkit("plugins", "--json", site=site, env={"PREFKIT_LOAD_PLUGINS": "prefkit-good"}))
    assert [p["name"] for p in by_dist] == ["good"]
    typo = run_prefkit("plugins", "--json", site=site, env={"PREFKIT_LOAD_PLUGINS": "good,godo"})
    assert [p["name"] for p in as_json(typo)] == ["good"]
    assert "no installed plugin has that name" in typo.stderr and "'godo'" in typo.stderr
    none = as_json(run_prefkit("plugins", "--json", site=site, env={"PREFKIT_LOAD_PLUGINS": ""}))
    assert none == []
    # default plugins (the core's own sources) still load with an empty allowlist
    ds = as_json(run_prefkit("datasets", "--json", site=site, env={"PREFKIT_LOAD_PLUGINS": ""}))
    assert {"hf", "disk", "file"} <= {d["name"] for d in ds}


def test_name_clash_names_both_plugins(tmp_path):
    site = tmp_path / "site"
    clash = """
import prefkit

class Src(prefkit.DatasetSource):
    pass

@prefkit.hookimpl
def register_datasets(register):
    register(Src(name="good-data"))
"""
    make_dist(site, "prefkit-good", {"good": "good_plugin"}, {"good_plugin": GOOD})
    make_dist(site, "prefkit-clash", {"clash": "clash_plugin"}, {"clash_plugin": clash})
    proc = run_prefkit("datasets", site=site)
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert "'good-data'" in err[0] and "'good'" in err[0] and "'clash'" in err[0]


def test_trace_plugins(tmp_path):
    proc = run_prefkit("datasets", "--json", env={"PREFKIT_TRACE_PLUGINS": "1"})
    assert proc.returncode == 0
    assert "calling register_datasets on plugin" in proc.stderr


def test_registered_plugin_helper(prefkit_home):
    import prefkit
    from prefkit.testing import cli, registered_plugin

    class Plugin:
        @prefkit.hookimpl
        def register_datasets(self, register):
            class Src(prefkit.DatasetSource):
                def load_rows(self, config=None, split=None, *, data_dir=None):
                    return [{"prompt": "hi", "chosen": "a", "rejected": "b"}]

            register(Src(name="in-test"))

    with registered_plugin(Plugin(), name="in-test-plugin"):
        res = cli("datasets", "--json")
        assert res.exit_code == 0
        assert "in-test" in [d["name"] for d in res.json()]
        assert prefkit.load_records("in-test")[0].prompt_text == "hi"
    res = cli("datasets", "--json")
    assert "in-test" not in [d["name"] for d in res.json()]


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from prefkit.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'datasets', 'trl', 'peft', 'openai', 'anthropic', "
            "'cohere', 'sentence_transformers', 'matplotlib', 'numpy') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    import subprocess
    import sys

    for args in (["--help"],):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert "HEAVY []" in out.stdout, out.stdout + out.stderr
    code2 = code.replace("main(['--help'])", "main(['plugins', '--json'])")
    out = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
