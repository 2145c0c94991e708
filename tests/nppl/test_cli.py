"""``prefkit nppl`` end to end through the real CLI (small settings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SMALL = ["--hidden-dim", "32", "--latent-dim", "16", "--batch-size", "16"]


def flat(text: str) -> str:
    """Messages as one line (rich wraps long lines on narrow terminals)."""
    return " ".join(text.split())


def test_help_lists_the_commands(prefkit_cli):
    r = prefkit_cli("nppl", "--help")
    assert r.exit_code == 0
    for cmd in ("synthetic", "train", "eval", "embed", "dpo", "generate"):
        assert cmd in r.stdout


@pytest.mark.slow
def test_synthetic_train_eval_end_to_end(prefkit_cli, tmp_path):
    data = tmp_path / "syn"
    r = prefkit_cli("nppl", "synthetic", "-o", str(data), "--n", "3000", "--json")
    assert r.exit_code == 0, r.output
    info = r.json()
    assert info["n"] == 3000 and set(info["splits"]) == {"train", "val", "test"}
    assert (data / "pairs.safetensors").exists() and (data / "manifest.json").exists()

    run = tmp_path / "run"
    args = ["nppl", "train", "--model", "nppl", "--data", str(data), "--steps", "20", "--eval-every", "10",
            "-o", str(run), *SMALL]
    r = prefkit_cli(*args, "--json")
    assert r.exit_code == 0, r.output
    m = r.json()
    assert m["trained_steps"] == 20 and m["kept_step"] in (10, 20)
    assert (run / "model.safetensors").exists() and not (run / "resume.safetensors").exists()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["command"] == "nppl train" and manifest["status"] == "done"
    logged = [json.loads(l) for l in (run / "results.jsonl").read_text().splitlines()]
    assert [row["key"] for row in logged] == ["step-000010", "step-000020"]

    # the same command again resumes: nothing is trained or logged twice
    r = prefkit_cli(*args)
    assert r.exit_code == 0 and "already trained" in flat(r.stderr)
    assert len((run / "results.jsonl").read_text().splitlines()) == 2

    ev = tmp_path / "ev"
    r = prefkit_cli("nppl", "eval", str(run), "--contexts", "0,2", "--seeds", "2", "--z-samples", "2",
                    "--conventions", "unseen,paper,all", "-o", str(ev), "--json")
    assert r.exit_code == 0, r.output
    out = r.json()
    cells = out["summary"]["nppl"]
    assert set(cells) == {"unseen", "paper", "all"} and set(cells["unseen"]) == {"0", "2"}
    assert all(0 <= c["mean"] <= 100 for conv in cells.values() for c in conv.values())
    assert Path(out["plot"][0]).exists() and (ev / "table.md").exists()
    assert len((ev / "results.jsonl").read_text().splitlines()) == 3 * 2 * 2
    # adding a seed computes only the new cells
    r = prefkit_cli("nppl", "eval", str(run), "--contexts", "0,2", "--seeds", "3", "--z-samples", "2",
                    "--conventions", "unseen,paper,all", "-o", str(ev))
    assert r.exit_code == 0, r.output
    assert len((ev / "results.jsonl").read_text().splitlines()) == 3 * 2 * 3
    assert "accuracy" in r.stdout


def test_interrupted_training_resumes(tmp_path):
    """Resume from resume.safetensors gives the same weights as an uninterrupted run."""
    import torch
    from safetensors.torch import load_file

    from prefkit.runs import Run
    from prefkit_nppl.config import TrainOptions
    from prefkit_nppl.data import make_synthetic
    from prefkit_nppl.training import RESUME_FILE, train_reward_model

    data = make_synthetic(n=2000)
    kw = dict(model="btl", steps=8, eval_every=4, hidden_dim=16, batch_size=8, select="last")
    full = Run.open("nppl train", output_dir=tmp_path / "full")
    train_reward_model(TrainOptions(**kw), full, data=data, progress=False)

    part = Run.open("nppl train", output_dir=tmp_path / "part")

    class Stop(Exception):
        pass

    def stop_at_4(row):
        if row["step"] == 4:
            raise Stop

    with pytest.raises(Stop):
        train_reward_model(TrainOptions(**kw), part, data=data, on_log=stop_at_4, progress=False)
    assert (tmp_path / "part" / RESUME_FILE).exists()
    part = Run.open("nppl train", output_dir=tmp_path / "part")
    m = train_reward_model(TrainOptions(**kw), part, data=data, progress=False)
    assert m["resumed_at_step"] == 4
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_bad_input_is_one_clear_line(prefkit_cli, tmp_path):
    r = prefkit_cli("nppl", "train", "--model", "gpt", "-o", str(tmp_path / "x"))
    assert r.exit_code == 2 and "unknown --model 'gpt'" in flat(r.stderr) and "Traceback" not in r.output
    r = prefkit_cli("nppl", "train", "--data", str(tmp_path / "missing"), "-o", str(tmp_path / "y"))
    assert r.exit_code == 2 and "no such directory" in flat(r.stderr)
    r = prefkit_cli("nppl", "eval", str(tmp_path))
    assert r.exit_code == 2 and "not a prefkit run directory" in flat(r.stderr)
    r = prefkit_cli("nppl", "train", "--latent", "fuzzy", "-o", str(tmp_path / "w"))
    assert r.exit_code == 2 and "unknown --latent 'fuzzy'" in flat(r.stderr)
    r = prefkit_cli("nppl", "train", "--max-context", "30", "-o", str(tmp_path / "z"))
    assert r.exit_code == 2 and "--max-context" in flat(r.stderr)


def test_eval_rejects_bad_options(prefkit_cli, tmp_path):
    from prefkit.runs import Run

    Run.open("nppl synthetic", output_dir=tmp_path / "s").finish()
    r = prefkit_cli("nppl", "eval", str(tmp_path / "s"), "--conventions", "odd")
    assert r.exit_code == 2 and "unknown --conventions odd" in flat(r.stderr)
    r = prefkit_cli("nppl", "eval", str(tmp_path / "s"), "--contexts", "1,x")
    assert r.exit_code == 2 and "integers" in flat(r.stderr)
    r = prefkit_cli("nppl", "eval", str(tmp_path / "s"))
    assert r.exit_code == 2 and "expected 'nppl train'" in flat(r.stderr)


def test_eval_cache_is_keyed_by_checkpoint_hash_and_reports_user_types(tmp_path):
    """Re-evaluating a retrained run must not return the old model's cells; accuracy per user type
    is in the result; a single-attribute model is trained on its type only."""
    from prefkit.options import RunOptions
    from prefkit_nppl.commands import evaluate, train
    from prefkit_nppl.config import EvalOptions, TrainOptions
    from prefkit_nppl.data import make_synthetic

    data = tmp_path / "syn"
    make_synthetic(n=2000).save(data)
    run = tmp_path / "run"
    kw = dict(model="btl", data=str(data), eval_every=5, hidden_dim=16, batch_size=8)
    train(TrainOptions(steps=5, **kw), RunOptions(output_dir=str(run)), progress=False)
    ev_opts = EvalOptions(contexts="0", seeds=1, conventions="unseen", json=True)
    first = evaluate([str(run)], None, ev_opts, RunOptions(output_dir=str(tmp_path / "ev")), progress=False)
    by_type = first["summary_by_type"]
    assert set(by_type) == {"btl: 0", "btl: 1"}
    # retrain into the same directory (other settings, --fresh): the eval run recomputes its cells
    train(TrainOptions(steps=40, lr=3e-3, **kw), RunOptions(output_dir=str(run), fresh=True), progress=False)
    second = evaluate([str(run)], None, ev_opts, RunOptions(output_dir=str(tmp_path / "ev")), progress=False)
    assert second["checkpoints"] != first["checkpoints"]
    fresh = evaluate([str(run)], None, ev_opts, RunOptions(output_dir=str(tmp_path / "ev2")), progress=False)
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # se of one run is nan
    assert same(second["summary"], fresh["summary"]) and not same(second["summary"], first["summary"])

    one = tmp_path / "one"
    m = train(TrainOptions(steps=60, lr=3e-3, user_type="1", **kw), RunOptions(output_dir=str(one)), progress=False)
    metrics = json.loads((one / "metrics.json").read_text())
    assert metrics["trained_user_type"] == "1" and metrics["selection_split"] == "val"
    r = evaluate([str(one)], "btl-1", ev_opts, RunOptions(output_dir=str(tmp_path / "ev3")), progress=False)
    cells = r["summary_by_type"]
    assert cells["btl-1: 1"]["unseen"][0]["mean"] > 85 > cells["btl-1: 0"]["unseen"][0]["mean"]
    assert any(p.endswith("accuracy_by_type.png") for p in r["plot"])


def test_selection_on_training_split_is_said(tmp_path, capsys):
    from prefkit.options import RunOptions
    from prefkit_nppl.commands import train
    from prefkit_nppl.config import TrainOptions
    from prefkit_nppl.data import make_synthetic

    data = tmp_path / "tiny"
    make_synthetic(n=300).save(data)
    train(TrainOptions(model="btl", data=str(data), steps=2, eval_every=2, hidden_dim=8, batch_size=4),
          RunOptions(output_dir=str(tmp_path / "r")), progress=False)
    err = flat(capsys.readouterr().err)
    assert "uses the TRAINING split" in err and "chosen on the TRAINING split" in err
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["selection_split"] == "train"


def test_eval_on_the_synthetic_benchmark_compares_with_the_paper(tmp_path):
    from prefkit.options import RunOptions
    from prefkit_nppl.commands import evaluate, train
    from prefkit_nppl.config import EvalOptions, TrainOptions

    run = train(TrainOptions(model="btl", steps=2, eval_every=2, hidden_dim=8, batch_size=4),
                RunOptions(output_dir=str(tmp_path / "r")), progress=False)
    r = evaluate([str(run)], None, EvalOptions(contexts="0,1", seeds=1, conventions="paper", per_type=False),
                 RunOptions(output_dir=str(tmp_path / "ev")), progress=False)
    assert set(r["gap_to_paper"]["btl"]) == {0, 1} and r["aggregation"] == {"paper": "samples"}
    assert "btl paper" in (tmp_path / "ev" / "table.md").read_text()
