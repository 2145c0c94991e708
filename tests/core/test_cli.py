"""CLI conventions: --version, one-line errors, --debug tracebacks, usage errors."""

from __future__ import annotations

import prefkit
from prefkit.testing import cli, registered_plugin


class Failing:
    @prefkit.hookimpl
    def register_commands(self, app):
        import typer

        @app.command("boom")
        def boom(kind: str = typer.Argument(...)):
            if kind == "usage":
                raise prefkit.UsageError("unknown split 'Nope' (splits: BeaverTails, Mnemonic)")
            if kind == "prefkit":
                raise prefkit.PrefkitError("cannot read results.jsonl: permission denied")
            if kind == "load":
                prefkit.load_records("no-such-dataset")
            raise KeyError("unexpected")


def _one_error_line(res):
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in res.stderr
    return lines[0]


def test_version():
    res = cli("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"prefkit {prefkit.__version__}"


def test_errors_are_one_line(prefkit_home):
    with registered_plugin(Failing(), "failing"):
        res = cli("boom", "usage")
        assert res.exit_code == 2
        assert "unknown split 'Nope'" in _one_error_line(res)
        res = cli("boom", "prefkit")
        assert res.exit_code == 1 and "permission denied" in _one_error_line(res)
        res = cli("boom", "load")
        assert res.exit_code == 2 and "unknown dataset 'no-such-dataset'" in _one_error_line(res)
        res = cli("boom", "other")
        assert res.exit_code == 1
        line = _one_error_line(res)
        assert "KeyError" in line and "--debug" in line


def test_debug_shows_traceback(prefkit_home):
    import pytest

    with registered_plugin(Failing(), "failing"):
        with pytest.raises(KeyError):
            cli("--debug", "boom", "other")
    import os

    assert "PREFKIT_DEBUG" not in os.environ


def test_unknown_command_is_a_usage_error():
    res = cli("no-such-command")
    assert res.exit_code == 2 and "No such command" in res.stderr


def test_help_lists_core_commands():
    res = cli("--help")
    assert res.exit_code == 0
    for name in ("plugins", "datasets", "backends", "runs"):
        assert name in res.stdout


def test_rich_markdown_is_deferred_but_works():
    """--help skips importing rich.markdown (markdown-it); any real use still gets the real module."""
    import subprocess
    import sys

    code = ("import sys\nfrom prefkit.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('MD', 'markdown_it' in sys.modules)\n"
            "import rich.markdown as m\nprint('HEADING', m.Heading.__module__)\n"
            "print('MARKDOWN', type(m.Markdown('# x')).__module__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "MD False" in out
    assert "HEADING rich.markdown" in out and "MARKDOWN rich.markdown" in out
