"""CLI conventions over the whole command tree (core and plugins), and the generated reference docs/cli.md."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

import pytest

from prefkit import _cli_docs

RUN_FLAGS = ("--output-dir", "-o", "--run-name", "--fresh")
# commands that write a model or dataset directory (-o), not a run directory
NOT_RUNS = {"merge-adapter", "train merge-adapter", "persona augment"}
# known gaps, each owned by a plugin branch; the test fails when one is fixed and still listed, too
KNOWN_GAPS = {
}
# commands that act or print one value for a human: no --json
NOT_REPORTING = {"keys set", "keys unset", "keys path", "models pull", "models path", "persona prompt"}
PLOT_FLAGS = {"--plot", "--no-plot", "--plot-to", "--plot-metric"}


@pytest.fixture(scope="module")
def tree():
    return [(" ".join(path), cmd) for path, cmd in _cli_docs.walk() if not _cli_docs.is_group(cmd)]


def test_the_walk_sees_core_and_plugin_commands(tree):
    names = {n for n, _ in tree}
    assert {"generate", "judge pairwise", "judge score", "winrate", "plugins", "runs list", "infer-personas",
            "nppl train", "tailor judge"} <= names


def test_result_writing_commands_take_output_dir_run_name_fresh(tree):
    gaps = set()
    for name, cmd in tree:
        opts = set(_cli_docs.option_names(cmd))
        if not opts & {"--output-dir", "--run-name", "--fresh"} or name in NOT_RUNS:
            continue
        missing = [f for f in RUN_FLAGS if f not in opts]
        if missing:
            gaps.add(name)
            assert name in KNOWN_GAPS, f"prefkit {name} writes results but lacks {', '.join(missing)}"
    assert gaps == set(KNOWN_GAPS), f"fixed, drop from KNOWN_GAPS: {set(KNOWN_GAPS) - gaps}"


def test_reporting_commands_take_json(tree):
    lacking = sorted(name for name, cmd in tree
                     if name not in NOT_REPORTING and "--json" not in _cli_docs.option_names(cmd))
    assert not lacking, f"reporting commands without --json: {lacking}"


def test_no_short_flag_means_two_things(tree):
    meaning: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], str] = {}
    for name, cmd in tree:
        for p in cmd.params:
            names = [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]
            longs = [n for n in names if n.startswith("--")]
            for short in (n for n in names if len(n) == 2 and n.startswith("-")):
                meaning[short].add(longs[0] if longs else p.name)
                where[(short, longs[0] if longs else p.name)] = name
    clashes = {s: sorted(f"{m} (prefkit {where[(s, m)]})" for m in ms) for s, ms in meaning.items() if len(ms) > 1}
    assert not clashes, clashes
    assert meaning["-o"] == {"--output-dir"} and meaning["-n"] == {"--limit"}


def test_plot_options_are_spelled_one_way(tree):
    for name, cmd in tree:
        for p in cmd.params:
            names = [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]
            plotty = [n for n in names if "plot" in n]
            if not plotty:
                continue
            assert set(plotty) <= PLOT_FLAGS, f"prefkit {name}: {plotty} (use --plot/--no-plot, --plot-to FILE)"
            if "--plot" in plotty or "--no-plot" in plotty:  # always the on/off pair, never a path
                assert set(plotty) == {"--plot", "--no-plot"}, f"prefkit {name}: {names}"


def test_flags_show_no_value_placeholder(tree):
    """A flag takes no value: its help line shows no "<bool>" (typer's default placeholder)."""
    bad = [f"prefkit {name} {p.opts[0]}" for name, cmd in tree for p in cmd.params
           if getattr(p, "is_flag", False) and p.name != "help" and p.metavar != ""]
    assert not bad, bad


def test_the_checks_can_fail():
    import typer
    import typer.main

    app = typer.Typer()

    @app.command("a")
    def a(out: str = typer.Option(None, "--output-dir", "-o"), n: int = typer.Option(1, "--num", "-n"),
          plot: str = typer.Option(None, "--plot")):
        pass

    @app.command("b")
    def b(limit: int = typer.Option(1, "--limit", "-n")):
        pass

    tree = [(" ".join(p), c) for p, c in _cli_docs.walk(typer.main.get_group(app))]
    with pytest.raises(AssertionError, match="lacks --run-name, --fresh"):
        test_result_writing_commands_take_output_dir_run_name_fresh(tree)
    with pytest.raises(AssertionError, match="without --json"):
        test_reporting_commands_take_json(tree)
    with pytest.raises(AssertionError, match="-n"):
        test_no_short_flag_means_two_things(tree)
    with pytest.raises(AssertionError, match="never a path|--plot"):
        test_plot_options_are_spelled_one_way(tree)


def test_docs_cli_md_is_generated_from_the_cli_and_current():
    res = subprocess.run([sys.executable, str(_cli_docs.ROOT / "scripts" / "gen_cli_docs.py"), "--check"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr + "\n(regenerate with: python scripts/gen_cli_docs.py)"
    text = (_cli_docs.ROOT / "docs" / "cli.md").read_text()
    assert "## Exit codes" in text and "| 130 |" in text and "#### `prefkit judge pairwise`" in text
    assert "`--plot-to`" in text and "`--output-dir`, `-o`" in text


def test_a_stale_reference_is_reported(tmp_path):
    stale = tmp_path / "cli.md"
    stale.write_text(_cli_docs.render().replace("Judge outputs B against outputs A", "Judge things"))
    res = subprocess.run([sys.executable, str(_cli_docs.ROOT / "scripts" / "gen_cli_docs.py"), "--check",
                          "--output", str(stale)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and "stale" in res.stderr
