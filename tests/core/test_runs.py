"""The run store: manifest, append-only results, resume, torn lines, no duplicates, secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from prefkit.errors import UsageError
from prefkit.runs import Run, list_runs, read_jsonl


def test_append_resume_no_duplicates(tmp_path):
    run = Run.open("gen", output_dir=tmp_path / "r", identity={"model": "m"}, argv=["prefkit", "gen"])
    assert run.append({"row_id": "1", "text": "a"})
    assert run.append({"row_id": "2", "text": "b"})
    assert not run.append({"row_id": "1", "text": "again"})  # already done: nothing written
    run.record_failure("3", "HTTP 500")
    run.finish()
    again = Run.open("gen", output_dir=tmp_path / "r", identity={"model": "m"}, argv=["prefkit", "gen"])
    assert again.resumed
    assert again.pending(["1", "2", "3", "4"]) == ["3", "4"]  # the failure is retried
    assert [f["key"] for f in again.failures()] == ["3"]
    again.append({"row_id": "3", "text": "c"})
    again.finish()
    rows = read_jsonl(tmp_path / "r" / "results.jsonl")
    assert [r["row_id"] for r in rows] == ["1", "2", "3"]
    assert again.failures() == []  # resolved
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["status"] == "done" and m["counts"] == {"results": 3, "failed": 0} and len(m["resumes"]) == 1


def test_custom_keys(tmp_path):
    run = Run.open("pi", output_dir=tmp_path / "r")
    run.append({"row_id": "1", "side": "chosen"}, key="1:chosen")
    run.append({"row_id": "1", "side": "rejected"}, key="1:rejected")
    assert not run.append({"row_id": "1", "side": "chosen"}, key="1:chosen")
    assert [r["key"] for r in run.results()] == ["1:chosen", "1:rejected"]


def test_identity_mismatch_is_an_error_and_fresh_starts_over(tmp_path):
    Run.open("gen", output_dir=tmp_path / "r", identity={"model": "a"}).append({"row_id": "1"})
    with pytest.raises(UsageError, match="other settings \\(model differ\\)"):
        Run.open("gen", output_dir=tmp_path / "r", identity={"model": "b"})
    with pytest.raises(UsageError, match="holds a 'gen' run"):
        Run.open("judge", output_dir=tmp_path / "r", identity={"model": "a"})
    fresh = Run.open("gen", output_dir=tmp_path / "r", identity={"model": "b"}, fresh=True)
    assert fresh.done_keys() == set()


def test_default_path_is_deterministic_so_rerun_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFKIT_RUNS_DIR", str(tmp_path))
    a = Run.open("infer-personas", name_hint="BeaverTails hf/SmolLM2")
    a.append({"row_id": "0"})
    a.finish()
    b = Run.open("infer-personas", name_hint="BeaverTails hf/SmolLM2")
    assert b.path == a.path and b.is_done("0")
    assert a.path == tmp_path / "infer-personas" / "BeaverTails-hf-SmolLM2"
    assert [r["command"] for r in list_runs(tmp_path)] == ["infer-personas"]


def test_torn_last_line_is_dropped(tmp_path):
    run = Run.open("gen", output_dir=tmp_path / "r")
    run.append({"row_id": "1", "text": "a"})
    run.append({"row_id": "2", "text": "b"})
    run.close()
    with open(tmp_path / "r" / "results.jsonl", "a") as fh:
        fh.write('{"row_id": "3", "text": "tor')
    again = Run.open("gen", output_dir=tmp_path / "r")
    assert again.repaired_bytes > 0
    assert again.pending(["1", "2", "3"]) == ["3"]
    again.append({"row_id": "3", "text": "c"})
    again.close()
    assert [r["text"] for r in read_jsonl(tmp_path / "r" / "results.jsonl")] == ["a", "b", "c"]


def test_kill_9_mid_run_loses_nothing_written(tmp_path):
    """A writer killed with SIGKILL at an arbitrary moment: every line before is intact, resume completes the rest."""
    out = tmp_path / "r"
    script = textwrap.dedent(f"""
        import sys, time
        from prefkit.runs import Run
        run = Run.open("gen", output_dir={str(out)!r})
        for i in run.pending([str(i) for i in range(100000)]):
            run.append({{"row_id": i, "text": "x" * 500}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 30
    while time.time() < deadline:
        p = out / "results.jsonl"
        if p.exists() and p.stat().st_size > 50_000:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows = read_jsonl(out / "results.jsonl")  # the torn tail (if any) is dropped
    n = len(rows)
    assert n > 0 and [r["row_id"] for r in rows] == [str(i) for i in range(n)]
    run = Run.open("gen", output_dir=out)
    todo = run.pending([str(i) for i in range(n + 50)])
    assert todo == [str(i) for i in range(n, n + 50)]
    for i in todo:
        run.append({"row_id": i, "text": "y"})
    run.finish()
    ids = [r["row_id"] for r in read_jsonl(out / "results.jsonl")]
    assert ids == [str(i) for i in range(n + 50)]  # no gap, no duplicate


def test_secrets_never_in_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value-123456")
    run = Run.open("gen", output_dir=tmp_path / "r",
                   config={"api_key": "sk-test-secret-value-123456", "model": "gpt", "headers": {"Authorization": "Bearer x"}},
                   argv=["prefkit", "gen", "--api-key", "sk-test-secret-value-123456", "--token=abc",
                         "--note", "key sk-test-secret-value-123456 here"])
    run.record_failure("1", "401: invalid key sk-test-secret-value-123456")
    run.finish()
    for name in ("manifest.json", "failures.jsonl"):
        text = (tmp_path / "r" / name).read_text()
        assert "sk-test-secret-value-123456" not in text
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["config"]["api_key"] == "***" and m["config"]["model"] == "gpt"
    assert "--token=***" in m["argv"] and "abc" not in json.dumps(m["argv"])


def test_metrics_and_context_manager(tmp_path):
    with Run.open("judge", output_dir=tmp_path / "r") as run:
        run.write_metrics({"win_rate": 0.5})
        run.write_metrics({"n": 10})
    assert json.loads((tmp_path / "r" / "metrics.json").read_text()) == {"win_rate": 0.5, "n": 10}
    with pytest.raises(RuntimeError):
        with Run.open("judge", output_dir=tmp_path / "r") as run:
            raise RuntimeError("x")
    assert Run.load(tmp_path / "r").manifest["status"] == "failed"


def test_runs_commands(prefkit_cli, prefkit_home):
    run = Run.open("gen", name_hint="demo")
    run.append({"row_id": "1"})
    run.finish()
    res = prefkit_cli("runs", "list", "--json")
    assert res.exit_code == 0 and res.json()[0]["results"] == 1
    res = prefkit_cli("runs", "show", str(run.path), "--json")
    assert res.exit_code == 0 and res.json()["manifest"]["command"] == "gen"
    res = prefkit_cli("runs", "show", str(prefkit_home / "nope"))
    assert res.exit_code != 0 and "not a prefkit run directory" in res.stderr


def test_sigterm_marks_run_interrupted(tmp_path):
    from .helpers import make_dist

    site = tmp_path / "site"
    code = f"""
import time
import prefkit

@prefkit.hookimpl
def register_commands(app):
    @app.command("slow-job")
    def slow_job():
        with prefkit.Run.open("slow-job", output_dir={str(tmp_path / 'run')!r}) as run:
            for i in range(10000):
                run.append({{"row_id": str(i)}})
                time.sleep(0.01)
"""
    make_dist(site, "prefkit-slow", {"slow": "slow_plugin"}, {"slow_plugin": code})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFKIT_")}
    env["PYTHONPATH"] = str(site) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "prefkit", "slow-job"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    results = tmp_path / "run" / "results.jsonl"
    while time.time() < deadline and not (results.exists() and results.stat().st_size > 100):
        time.sleep(0.05)
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "resume" in err
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["status"] == "interrupted" and m["counts"]["results"] >= 1


# ---------------------------------------------------------------------- the one lifecycle
def test_lifecycle_statuses_and_exit_codes(tmp_path):
    import prefkit

    with prefkit.Run.open("job", output_dir=tmp_path / "ok") as run:
        run.expect(["1", "2"])
        run.append({"row_id": "1"})
        run.append({"row_id": "2"})
    assert run.status == prefkit.RunStatus.DONE and prefkit.exit_code(run) == 0
    assert Run.load(tmp_path / "ok").manifest["counts"] == {"results": 2, "failed": 0, "missing": 0}

    with prefkit.Run.open("job", output_dir=tmp_path / "some-failed") as run:
        run.append({"row_id": "1"})
        run.record_failure("2", "HTTP 500 after 3 retries")
    assert run.status == "incomplete" and prefkit.exit_code(tmp_path / "some-failed") == 1
    assert "1 items failed after retries (2;" in run.failure_summary() and "re-run" in run.failure_summary()

    with prefkit.Run.open("job", output_dir=tmp_path / "missing") as run:
        run.expect(["1", "2", "3"])
        run.append({"row_id": "1"})
    assert run.status == "incomplete" and "2 items have no result" in run.failure_summary()

    with pytest.raises(ValueError):  # a real failure is "failed", never "interrupted"
        with prefkit.Run.open("job", output_dir=tmp_path / "boom") as run:
            raise ValueError("bad row")
    m = Run.load(tmp_path / "boom").manifest
    assert m["status"] == "failed" and "ValueError: bad row" in m["summary"]["error"]
    assert prefkit.exit_code(m["status"]) == prefkit.ExitCode.ITEMS_FAILED

    with pytest.raises(KeyboardInterrupt):
        with prefkit.Run.open("job", output_dir=tmp_path / "ctrl-c") as run:
            raise KeyboardInterrupt
    assert run.status == "interrupted" and prefkit.exit_code(run) == 130

    with prefkit.Run.open("job", output_dir=tmp_path / "dry") as run:
        run.finish(prefkit.RunStatus.DRY_RUN)
    assert run.status == "dry-run" and prefkit.exit_code(run) == 0
    assert set(prefkit.STATUSES) == {"running", "done", "incomplete", "failed", "interrupted", "dry-run"}


def test_old_status_names_map_onto_the_one_set(tmp_path):
    run = Run.open("job", output_dir=tmp_path / "r")
    run.finish("completed")
    assert run.status == "done"
    with pytest.raises(ValueError):
        run.finish("finished-ish")


def test_existing_creates_nothing_and_run_path_matches_open(tmp_path, monkeypatch):
    import prefkit
    from prefkit.runs import run_path

    monkeypatch.setenv("PREFKIT_RUNS_DIR", str(tmp_path / "base"))
    assert prefkit.runs_dir() == tmp_path / "base"
    assert Run.existing("judge pairwise", name_hint="a-vs-b") is None
    assert not (tmp_path / "base").exists()
    with Run.open("judge pairwise", name_hint="a-vs-b") as run:
        pass
    assert run.path == run_path("judge pairwise", name_hint="a-vs-b") == tmp_path / "base" / "judge-pairwise" / "a-vs-b"
    assert Run.existing("judge pairwise", name_hint="a-vs-b").path == run.path
    assert Run.existing("judge pairwise", name_hint="a-vs-b", fresh=True) is None


def test_command_exit_prints_which_items_failed_and_exits_1(prefkit_cli, tmp_path):
    import prefkit
    from prefkit.testing import registered_plugin

    class Plugin:
        @prefkit.hookimpl
        def register_commands(self, app):
            @app.command("flaky")
            def flaky():
                with prefkit.Run.open("flaky", output_dir=tmp_path / "flaky") as run:
                    run.append({"row_id": "a"})
                    run.record_failure("b", "timeout")
                prefkit.command_exit(run)

            @app.command("fine")
            def fine():
                with prefkit.Run.open("fine", output_dir=tmp_path / "fine") as run:
                    run.append({"row_id": "a"})
                prefkit.command_exit(run)

    with registered_plugin(Plugin(), "flaky-plugin"):
        res = prefkit_cli("flaky")
        assert res.exit_code == 1
        assert "Error:" in res.stderr and "(b;" in res.stderr and "re-run the same command" in res.stderr
        assert prefkit_cli("fine").exit_code == 0


def test_every_command_gets_the_exit_code_of_its_runs(prefkit_cli, tmp_path):
    """A command body that never calls command_exit still exits 1 when its run ended incomplete."""
    import prefkit
    from prefkit.testing import registered_plugin

    class Plugin:
        @prefkit.hookimpl
        def register_commands(self, app):
            @app.command("half-done")
            def half_done():
                with prefkit.Run.open("half-done", output_dir=tmp_path / "h") as run:
                    run.expect(["a", "b"])
                    run.append({"row_id": "a"})

    with registered_plugin(Plugin(), "half-plugin"):
        res = prefkit_cli("half-done")
        assert res.exit_code == 1 and "1 items have no result" in res.stderr and "re-run" in res.stderr
        assert prefkit_cli("runs", "list", "--dir", str(tmp_path)).exit_code == 0  # nothing leaks into the next


def test_sigterm_inside_the_block_is_interrupted_from_python_too(tmp_path):
    """Without the CLI: the Run context manager itself turns SIGTERM into a recorded 'interrupted'."""
    script = textwrap.dedent(f"""
        import time
        import prefkit
        with prefkit.Run.open("py-job", output_dir={str(tmp_path / 'run')!r}) as run:
            for i in range(100000):
                run.append({{"row_id": str(i)}})
                time.sleep(0.01)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = tmp_path / "run" / "results.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (results.exists() and results.stat().st_size > 50):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["status"] == "interrupted" and m["counts"]["results"] >= 1
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)  # this process's handler untouched


def test_token_counts_are_settings_not_secrets(tmp_path):
    """max_tokens & co. stay in the manifest and the identity: a resume with other limits is a different run."""
    cfg = {"max_tokens": 300, "max_new_tokens": 64, "tokenizer": "gpt2", "hf_token": "hf_secretvalue123",
           "access_token": "abc", "roles": {"user": {"max_tokens": 200}}}
    run = Run.open("gen", output_dir=tmp_path / "r", config=cfg, identity={"max_tokens": 300},
                   argv=["prefkit", "gen", "--max-new-tokens", "64", "--hf-token", "hf_secretvalue123"])
    run.finish()
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["config"]["max_tokens"] == 300 and m["config"]["max_new_tokens"] == 64
    assert m["config"]["tokenizer"] == "gpt2" and m["config"]["roles"]["user"]["max_tokens"] == 200
    assert m["config"]["hf_token"] == "***" and m["config"]["access_token"] == "***"
    assert "64" in m["argv"] and "hf_secretvalue123" not in json.dumps(m)
    with pytest.raises(Exception):  # another max_tokens is another run: no silent mixing on resume
        Run.open("gen", output_dir=tmp_path / "r", config=cfg, identity={"max_tokens": 500})
