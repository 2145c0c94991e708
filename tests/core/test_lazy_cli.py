"""Lazy start-up (cached command index), plugin-added hook specs, `prefkit judge ...` from the judges registry."""

from __future__ import annotations

import json
import os
import time

import prefkit
from prefkit.testing import registered_plugin

from .helpers import as_json, make_dist, run_prefkit

PLUGIN = """
import prefkit

@prefkit.hookimpl
def register_commands(app):
    from lazyplug_cli import hello

    app.command("lazy-hello")(hello)
"""

PLUGIN_CLI = '''
import typer

def hello(name: str = typer.Option("world", "--name")):
    "HELP_LINE"
    print(f"hello {name}")
'''

PROBE = ("import sys\nfrom prefkit.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
         "print('MODULES', sorted(m for m in sys.modules if m.split('.')[0] in "
         "('lazyplug', 'lazyplug_cli', 'prefkit_persona', 'prefkit_nppl', 'pluggy', 'pydantic') "
         "or m in ('prefkit.commands.judge', 'prefkit.commands.generate', 'prefkit.plugins')))")


def _site(tmp_path, help_line="Say hello lazily."):
    site = tmp_path / "site"
    make_dist(site, "prefkit-lazyplug", {"lazyplug": "lazyplug"},
              {"lazyplug": PLUGIN, "lazyplug_cli": PLUGIN_CLI.replace("HELP_LINE", help_line)})
    return site


def _probe(args, site, home):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFKIT_")}
    env["PYTHONPATH"] = str(site) + os.pathsep + env.get("PYTHONPATH", "")
    env["PREFKIT_HOME"] = str(home)
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, env=env,
                         timeout=120)
    line = next(x for x in out.stdout.splitlines() if x.startswith("MODULES"))
    return out, eval(line[len("MODULES "):])


def test_help_and_plugins_import_no_plugin_code_once_indexed(tmp_path):
    site, home = _site(tmp_path), tmp_path / "home"
    first, _ = _probe(["--help"], site, home)  # a miss: builds the index
    assert "lazy-hello" in first.stdout and "Say hello lazily." in first.stdout
    out, mods = _probe(["--help"], site, home)
    assert "lazy-hello" in out.stdout and "Say hello lazily." in out.stdout and "judge" in out.stdout
    assert mods == [], mods  # no plugin, no command module, not even pluggy or pydantic
    out, mods = _probe(["plugins", "--json"], site, home)
    assert "lazyplug" in [p["name"] for p in json.loads(out.stdout[:out.stdout.rindex("MODULES")])]
    out, mods = _probe(["plugins", "--json"], site, home)  # the listing is cached too
    assert mods == [], mods
    # running one command imports its plugin only
    out, mods = _probe(["lazy-hello", "--name", "you"], site, home)
    assert "hello you" in out.stdout, out.stderr
    assert "lazyplug_cli" in mods and "prefkit_persona" not in mods and "prefkit.commands.judge" not in mods
    out, mods = _probe(["lazy-hello", "--help"], site, home)
    assert "--name" in out.stdout and "prefkit_nppl" not in mods


def test_index_is_rebuilt_when_a_plugin_changes_or_is_installed(tmp_path):
    site, home = _site(tmp_path), tmp_path / "home"
    env = {"PREFKIT_HOME": str(home)}
    assert "Say hello lazily." in run_prefkit("--help", site=site, env=env).stdout
    time.sleep(0.01)
    (site / "lazyplug_cli.py").write_text(PLUGIN_CLI.replace("HELP_LINE", "Greets, edited."))
    assert "Greets, edited." in run_prefkit("--help", site=site, env=env).stdout
    make_dist(site, "prefkit-second", {"second": "second_plugin"}, {"second_plugin": """
import prefkit

@prefkit.hookimpl
def register_commands(app):
    @app.command("second-cmd")
    def second_cmd():
        "The second plugin's command."
"""})
    help_text = run_prefkit("--help", site=site, env=env).stdout
    assert "second-cmd" in help_text and "lazy-hello" in help_text
    # allowlisting changes the index too
    help_text = run_prefkit("--help", site=site, env={**env, "PREFKIT_LOAD_PLUGINS": "second"}).stdout
    assert "second-cmd" in help_text and "lazy-hello" not in help_text
    # a command that is gone is an ordinary unknown command
    assert run_prefkit("lazy-hello", site=site, env={**env, "PREFKIT_LOAD_PLUGINS": "second"}).returncode == 2


def test_broken_plugin_warning_survives_the_cache(tmp_path):
    site, home = tmp_path / "site", tmp_path / "home"
    make_dist(site, "prefkit-broken", {"broken": "broken_plugin"}, {"broken_plugin": "raise ImportError('nope')"})
    for _ in range(2):
        res = run_prefkit("--help", site=site, env={"PREFKIT_HOME": str(home)})
        assert res.returncode == 0 and res.stderr.count("plugin 'broken' failed to load") == 1, res.stderr


def test_no_cache_switch(tmp_path):
    site, home = _site(tmp_path), tmp_path / "home"
    res = run_prefkit("--help", site=site, env={"PREFKIT_HOME": str(home), "PREFKIT_NO_CLI_CACHE": "1"})
    assert "lazy-hello" in res.stdout and not list(home.glob("cli-index-*.json"))


# ---------------------------------------------------------------------- plugin-added hook specs
class ThingSpecs:
    @staticmethod
    @prefkit.hookspec
    def register_things(register):
        """Register things."""


class AddsThings:
    @prefkit.hookimpl
    def add_hookspecs(self, register):
        register(ThingSpecs, registries={"register_things": "things"})

    @prefkit.hookimpl
    def register_things(self, register):
        register(object(), name="first-thing")


class MoreThings:
    @prefkit.hookimpl
    def register_things(self, register):
        register(object(), name="second-thing")


def test_plugins_add_hook_specs_and_registries(prefkit_home):
    from prefkit.plugins import registry

    with registered_plugin(MoreThings(), "more-things"), registered_plugin(AddsThings(), "adds-things"):
        reg = registry("things")
        assert sorted(reg.names()) == ["first-thing", "second-thing"] and reg.label == "thing"
        assert reg.entry("second-thing").plugin == "more-things"
        listed = {p["name"]: p for p in prefkit.testing.cli("plugins", "--json").json()}
        assert listed["more-things"]["registered"] == {"things": ["second-thing"]}


def test_core_names_no_method_hooks():
    import prefkit.hookspecs as specs
    from prefkit.plugins import REGISTER_HOOKS

    assert not hasattr(specs, "register_persona_strategies")
    assert "register_persona_strategies" not in REGISTER_HOOKS
    from prefkit.plugins import registry

    assert {"abductive", "zero-shot"} <= set(registry("persona_strategies").names())  # added by the persona plugin


# ---------------------------------------------------------------------- judges from the registry
class EchoJudge:
    name = "echo"
    kind = "pairwise"
    description = "Prefers the longer response (a test judge)."


class JudgePlugin:
    @prefkit.hookimpl
    def register_judges(self, register):
        import typer

        def echo_command(a: str = typer.Option(..., "--a", help="Outputs A."),
                         json_: bool = typer.Option(False, "--json", help="Print JSON.")):
            """Judge with the echo judge."""
            print(f"echo judged {a}")

        register(EchoJudge(), command=echo_command)
        register(type("Quiet", (), {"name": "quiet", "description": "API only"})())


def test_a_plugin_judge_appears_on_the_cli(prefkit_cli):
    with registered_plugin(JudgePlugin(), "echo-judges"):
        res = prefkit_cli("judge", "--help")
        assert res.exit_code == 0 and "echo" in res.stdout and "Judge with the echo judge." in res.stdout
        res = prefkit_cli("judge", "echo", "--a", "x.jsonl")
        assert res.exit_code == 0 and "echo judged x.jsonl" in res.stdout
        rows = {r["name"]: r for r in prefkit_cli("judges", "--json").json()}
        assert rows["echo"]["command"] == "prefkit judge echo" and rows["echo"]["plugin"] == "echo-judges"
        assert rows["quiet"]["command"] is None and rows["pairwise"]["command"] == "prefkit judge pairwise"
        assert prefkit_cli("judge", "quiet").exit_code == 2
    assert prefkit_cli("judge", "echo", "--a", "x").exit_code == 2  # gone with its plugin
