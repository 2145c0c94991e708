"""One end-to-end run on the FIXTURE and the tiny model: train -> predict (two context modes) -> judge -> report."""

KEY_ENV = {"OPENAI_API_KEY": "sk-test-not-a-real-key"}


def test_train_predict_judge_report(compred_fixture, tiny_model, tmp_path, prefkit_cli, fake_openai_server):
    data_dir = str(compred_fixture["data_dir"])
    r = prefkit_cli("compred", "train", "--subset", "finance", "--model", str(tiny_model), "--context", "subreddit",
                    "--data-dir", data_dir, "--sft-max-steps", "1", "--dpo-max-steps", "1", "--per-device-batch", "2",
                    "--limit", "8", "--eval-limit", "4", "--max-length", "160", "--max-prompt-tokens", "96",
                    "-o", str(tmp_path / "train"), "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json()["handoff"]["context"] == "subreddit"
    outs = {}
    for ctx in ("subreddit", "none"):
        r = prefkit_cli("compred", "predict", str(tmp_path / "train"), "--context", ctx, "--limit", "4",
                        "--max-tokens", "8", "-o", str(tmp_path / f"pred-{ctx}"), "--json")
        assert r.exit_code == 0, r.stderr
        res = r.json()
        assert res["subset"] == "finance" and res["context"] == ctx and res["counts"]["done"] == 4
        outs[ctx] = tmp_path / f"pred-{ctx}"
    fake_openai_server.responder = lambda req: "[RESULT] A"     # always the first shown: orders disagree -> ties
    r = prefkit_cli("compred", "judge", str(outs["none"]), str(outs["subreddit"]), "--backend", "openai",
                    "--base-url", fake_openai_server.url, "--model", "judge", "--bootstrap", "50",
                    "-o", str(tmp_path / "judge"), "--json", env=KEY_ENV)
    assert r.exit_code == 0, r.stderr
    j = r.json()
    assert j["overall"]["tie"] == 4 and j["overall"]["win_rate"] is None and j["overall"]["win_rate_ties_half"] == 0.5
    r = prefkit_cli("compred", "report", str(tmp_path / "train"), str(outs["subreddit"]), str(tmp_path / "judge"),
                    "--plot-to", str(tmp_path / "report.png"), "--json")
    assert r.exit_code == 0, r.stderr
    kinds = [row["kind"] for row in r.json()["rows"]]
    assert kinds == ["train", "predict", "judge"] and (tmp_path / "report.png").exists()
    # a mismatched pair of outputs is one clear error line
    lines = (outs["none"] / "results.jsonl").read_text().splitlines()
    (tmp_path / "short.jsonl").write_text("\n".join(lines[:2]) + "\n")
    r = prefkit_cli("compred", "judge", str(outs["none"]), str(tmp_path / "short.jsonl"), "--backend", "openai",
                    "--base-url", fake_openai_server.url, "--model", "judge", "-o", str(tmp_path / "j2"), env=KEY_ENV)
    assert r.exit_code == 2 and "2 of A's 4 posts are missing from B" in r.stderr
