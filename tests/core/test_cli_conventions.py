"""Bad option values of the judge commands: one `Error:` line, no traceback, nothing run."""

from __future__ import annotations

import json

from prefkit.testing import cli


def _one_error_line(res):
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code != 0
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in res.stderr
    return lines[0]


def _outputs(tmp_path):
    path = tmp_path / "out.jsonl"
    rows = [{"row_id": str(i), "prompt": f"p{i}", "response": f"r{i}"} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_judge_score_rejects_non_positive_limit(prefkit_home, tmp_path):
    out = _outputs(tmp_path)
    for bad in ("0", "-1"):
        res = cli("judge", "score", "--input", out, "--backend", "mock", "--limit", bad, "--no-plot")
        assert "--limit must be at least 1" in _one_error_line(res)


def test_judge_commands_reject_negative_bootstrap(prefkit_home, tmp_path):
    out = _outputs(tmp_path)
    res = cli("judge", "pairwise", "--a", out, "--b", out, "--backend", "mock", "--bootstrap", "-5", "--no-plot")
    assert "--bootstrap" in _one_error_line(res)
    res = cli("judge", "score", "--input", out, "--backend", "mock", "--bootstrap", "-5", "--no-plot")
    assert "--bootstrap" in _one_error_line(res)
    res = cli("winrate", str(tmp_path), "--bootstrap", "-1")
    assert "--bootstrap" in _one_error_line(res)


def test_winrate_plot_rejects_other_suffixes(prefkit_home, tmp_path):
    # FILE.txt used to write FILE.png twice: the outcomes plot overwrote the win-rate plot
    res = cli("winrate", str(tmp_path), "--plot-to", str(tmp_path / "p.txt"))
    assert "--plot-to must be a .png or .pdf file" in _one_error_line(res)
    assert not (tmp_path / "p.png").exists()
