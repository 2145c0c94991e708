"""Conversations against the fault-injecting server: exactly-once turns, no duplicate answers, kill -9 + resume."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import prefkit
from prefkit.testing import FakeOpenAIServer

from . import dialogue_worker as worker

HERE = Path(__file__).parent


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-anthropic")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-openai")
    with FakeOpenAIServer(worker.server_script(), key_fn=worker.server_key, retry_after=0.05,
                          faults={"429": 0.04, "500": 0.04, "drop": 0.03}, max_faults_per_key=2, seed=3) as s:
        yield s


def committed_and_calls(out):
    rows = prefkit.Run.load(out).results()
    turns = [r for r in rows if r["kind"] == "turn"]
    calls = [r for r in rows if r["kind"] == "call"]
    return turns, calls


def test_200_conversations_5_turns_3_roles_under_faults(server, tmp_path):
    out = tmp_path / "run"
    result = worker.run(server.url, server.root_url, str(out), convs=200, turns=5, concurrency=32)
    s = result.summary
    assert s["conversations_done"] == 200 and s["conversations_failed"] == 0, s
    assert sum(server.fault_counts.values()) > 50 and set(server.fault_counts) == {"429", "500", "drop"}
    assert server.duplicates() == {}  # zero duplicate successful requests, server-side
    turns, calls = committed_and_calls(out)
    keys = [t["key"] for t in turns]
    assert len(keys) == len(set(keys)) == s["turns_committed"]  # every turn committed exactly once
    by_conv = {}
    for t in turns:
        by_conv.setdefault(t["conversation"], []).append(t["turn"])
    assert all(sorted(v) == list(range(len(v))) for v in by_conv.values())  # no gaps
    assert all(len(v) == 5 or turns[[x["key"] for x in turns].index(f"{c}/{len(v) - 1}")]["final"]
               for c, v in by_conv.items())
    # no half turns: every committed turn has its user, both candidates and its judge call(s) stored
    stored = {c["key"] for c in calls}
    for t in turns:
        assert set(t["calls"]) <= {k.rsplit("/", 1)[0] if k.count("/") == 3 else k for k in stored}
        base = f"{t['conversation']}/{t['turn']}"
        assert {f"{base}/user", f"{base}/responder/0", f"{base}/responder/1", f"{base}/judge"} <= stored
    # each successful server answer is stored once (re-asks included), none lost
    assert len(calls) == server.success_count + sum(1 for c in calls if c.get("candidate") == 1)
    # per-role specs reached the right protocol and model
    assert {b.get("model") for b in server.bodies} == {"user-model", "resp-model", "judge-model"}
    assert all(b.get("n") == 2 for b in server.bodies if b.get("model") == "resp-model")  # native n
    assert all(b.get("max_tokens") == 16 for b in server.bodies if b.get("model") == "judge-model")


def test_a_role_on_another_provider_speaks_its_protocol(server, tmp_path):
    result = worker.run(server.url, server.root_url, str(tmp_path / "run"), convs=6, turns=2,
                        judge_backend="anthropic")
    assert result.summary["conversations_done"] == 6
    by_path = {("anthropic-version" in h, b.get("model")) for h, b in zip(server.headers_seen, server.bodies)}
    assert (True, "judge-model") in by_path and (False, "user-model") in by_path  # judge: Anthropic Messages API
    judge_bodies = [b for b in server.bodies if b.get("model") == "judge-model"]
    assert all("system" in b and "n" not in b for b in judge_bodies)
    assert set(result.summary["roles"]) == {"user", "responder", "judge"}
    assert result.summary["roles"]["judge"]["backend"] == "anthropic"


def _spawn(url, out, log):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(HERE / "dialogue_worker.py"), "--url", url, "--out", str(out),
                             "--convs", "40", "--turns", "5", "--seed", "11", "--concurrency", "8"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(server, tmp_path):
    server.latency = 0.02
    out = tmp_path / "killed"
    results = out / "results.jsonl"
    with open(tmp_path / "log1", "w") as log:
        proc = _spawn(server.root_url, out, log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = sum(1 for line in open(results) if '"kind": "turn"' in line) if results.exists() else 0
            if n >= 40:
                break
            assert proc.poll() is None, (tmp_path / "log1").read_text()
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    turns_before, calls_before = committed_and_calls(out)
    committed_before = {f"{t['conversation']}/{t['turn']}" for t in turns_before}
    assert 40 <= len(committed_before) < 200  # killed mid-run
    # the server may still be answering requests the killed client sent: let it drain before taking stock
    drain = time.monotonic() + 10
    while server.in_flight and time.monotonic() < drain:
        time.sleep(0.01)
    time.sleep(0.05)
    answered_before = set(server.success_counts) | set(server.seen)

    with open(tmp_path / "log2", "w") as log:
        proc = _spawn(server.root_url, out, log)
        assert proc.wait(timeout=120) == 0, (tmp_path / "log2").read_text()
    # nothing was asked again for a committed turn; a call answered twice was one in flight at the kill
    for key, count in server.success_counts.items():
        turn = key.split("|")[0]
        if count > 1:
            assert turn not in committed_before and key in answered_before
    assert len(server.duplicates()) <= 8  # at most the calls in flight (--concurrency 8)
    resumed = set(server.success_counts) - answered_before
    assert not {k.split("|")[0] for k in resumed} & committed_before

    ref = tmp_path / "reference"
    worker.run(server.url, server.root_url, str(ref), convs=40, turns=5, seed=11, concurrency=8)
    assert worker.conversations(str(out)) == worker.conversations(str(ref))
    assert len(worker.conversations(str(ref))) == 40
