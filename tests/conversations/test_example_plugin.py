"""The example plugin's multi-turn, multi-role command, driven through the CLI with the per-role fake backend."""

import json
import sys
from pathlib import Path

import pytest

from prefkit.testing import ScriptedBackend, cli, registered_plugin

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "prefkit-hello"


@pytest.fixture
def hello(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for name in [m for m in sys.modules if m.startswith("prefkit_hello")]:
        monkeypatch.delitem(sys.modules, name)
    import prefkit_hello

    with registered_plugin(prefkit_hello, "hello"):
        yield prefkit_hello


def fake():
    unreadable = ["hmm"]  # the first score the judge gives is unreadable: re-asked once

    def judge(r):
        if unreadable:
            return unreadable.pop()
        return "4" if "candidate 0" in str(r.messages) else "2"  # candidate 0 scores 4, candidate 1 scores 2

    return ScriptedBackend({
        "user": lambda r: f"question {len(r.messages)}",
        "assistant": lambda r: f"candidate {r.meta['candidate']} for {r.messages[-1]['content']}",
        "judge": judge,
    })


def test_hello_chat_runs_resumes_and_reports_per_role(hello, tmp_path):
    backend = fake()
    with backend.installed():
        r = cli("hello-chat", "--turns", "2", "--assistant-model", "mock:helper-7b", "-o", str(tmp_path / "run"),
                "--json")
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        assert [c["status"] for c in out["conversations"]] == ["done"] * 3
        turns = out["conversations"][0]["turns"]
        assert len(turns) == 2 and all(t["scores"] == [4, 2] and t["chosen"] == 0 for t in turns)
        assert {q.model for q in backend.requests_for("assistant")} == {"helper-7b"}
        assert out["summary"]["roles"]["judge"]["requests"] == 3 * 2 * 2 + 1  # one re-ask
        backend.reset()
        again = cli("hello-chat", "--turns", "2", "--assistant-model", "mock:helper-7b", "-o", str(tmp_path / "run"),
                    "--json")
        assert again.exit_code == 0 and backend.call_count == 0  # resumed: every turn already committed
        assert json.loads(again.stdout)["conversations"] == out["conversations"]
        dry = cli("hello-chat", "--turns", "4", "--dry-run")
        assert dry.exit_code == 0 and backend.call_count == 0
        text = " ".join(dry.output.split())
        assert "dry run: 3 conversations" in text and "user (mock/user-sim): 12 calls" in text
        assert "judge (mock/judge): 24 calls" in text and "== " not in text  # no placeholder chats printed
