"""Config dataclasses as CLI options: one definition drives the Python API and the flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import typer

from prefkit.options import RunOptions, opt, split_csv, with_options
from prefkit.testing import cli, registered_plugin

import prefkit


@dataclass
class Cfg:
    lr: float = opt(2e-5, help="Learning rate.")
    steps: Optional[int] = opt(None, help="Max steps.")
    lora: bool = opt(True, help="Use LoRA.")
    stop: list[str] = opt(default_factory=list, help="Stop strings (comma-separated).", cli_type=Optional[str],
                          parser=split_csv)
    name: str = opt("x", flag="--run-label", short="-l", help="A label.")
    internal: int = opt(5, cli=False)


class Plugin:
    @prefkit.hookimpl
    def register_commands(self, app):
        @app.command("opt-demo")
        @with_options(RunOptions, "run_opts")
        @with_options(Cfg, "cfg")
        def demo(split: str = typer.Argument(...), verbose: bool = typer.Option(False, "--verbose"),
                 cfg: Cfg = None, run_opts: RunOptions = None):
            from prefkit.console import print_json

            print_json({"split": split, "verbose": verbose, "cfg": cfg, "run": run_opts})


def test_defaults_and_overrides(prefkit_home):
    with registered_plugin(Plugin(), "opt-demo"):
        res = cli("opt-demo", "train")
        assert res.exit_code == 0, res.stderr
        assert res.json() == {"split": "train", "verbose": False,
                              "cfg": {"lr": 2e-5, "steps": None, "lora": True, "stop": [], "name": "x", "internal": 5},
                              "run": {"output_dir": None, "run_name": None, "fresh": False}}
        res = cli("opt-demo", "test", "--lr", "0.1", "--steps", "3", "--no-lora", "--stop", "a,b", "-l", "y",
                  "-o", "out", "--fresh", "--verbose")
        assert res.exit_code == 0, res.stderr
        assert res.json() == {"split": "test", "verbose": True,
                              "cfg": {"lr": 0.1, "steps": 3, "lora": False, "stop": ["a", "b"], "name": "y", "internal": 5},
                              "run": {"output_dir": "out", "run_name": None, "fresh": True}}
        res = cli("opt-demo", "train", "--lr", "fast")
        assert res.exit_code == 2 and "Invalid value for '--lr'" in res.stderr
        help_text = cli("opt-demo", "--help").stdout
        for flag in ("--lr", "--steps", "--lora", "--no-lora", "--stop", "--run-label", "--output-dir", "--fresh"):
            assert flag in help_text
        assert "--internal" not in help_text


def test_split_csv():
    assert split_csv("a, b,,c") == ["a", "b", "c"]
    assert split_csv(["a,b", "c"]) == ["a", "b", "c"]
    assert split_csv(None) == []


def test_parser_errors_name_the_flag(prefkit_home):
    res = cli("generate", "--input", "x.jsonl", "--backend", "mock", "--concurrency", "0")
    assert res.exit_code == 2
    assert res.stderr.strip() == "Error: --concurrency: expected a positive integer, got 0"


def test_negative_temperature_is_refused(prefkit_home):
    res = cli("generate", "--input", "x.jsonl", "--backend", "mock", "--temperature", "-1")
    assert res.exit_code == 2 and res.stderr.strip() == "Error: --temperature: expected 0 or more, got -1"
