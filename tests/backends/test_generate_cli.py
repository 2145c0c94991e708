"""`prefkit generate`, `prefkit keys`, `prefkit models`, `prefkit backends` through the real CLI."""

import json
import os
import stat

import pytest

from prefkit.backends import BackendError
from prefkit.runs import Run


@pytest.fixture
def inp(prefkit_home):
    p = prefkit_home / "in.jsonl"
    rows = [{"id": f"r{i}", "prompt": f"prompt {i}", "other": i} for i in range(6)]
    rows[2]["prompt"] = [{"role": "user", "content": "chat style"}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return p


def test_generate_writes_one_result_per_row_and_resumes(prefkit_cli, mock_backend, inp, prefkit_home):
    out = prefkit_home / "out"
    r = prefkit_cli("generate", "--backend", "mock", "--input", str(inp), "-o", str(out), "--system", "be kind")
    assert r.exit_code == 0, r.output
    rows = Run.load(out).results()
    assert [x["row_id"] for x in rows] == [f"r{i}" for i in range(6)]
    assert rows[0]["text"] == "mock answer: prompt 0" and rows[0]["prompt"] == "prompt 0"
    assert rows[2]["text"] == "mock answer: chat style"
    assert {"finish_reason", "usage", "model"} <= set(rows[0])
    assert mock_backend.requests[0].messages[0] == {"role": "system", "content": "be kind"}
    calls = mock_backend.call_count
    r = prefkit_cli("generate", "--backend", "mock", "--input", str(inp), "-o", str(out), "--system", "be kind",
                    "--json")
    assert r.exit_code == 0, r.output
    assert mock_backend.call_count == calls  # zero requests on a finished run
    assert r.json()["already_done"] == 6 and r.json()["sent"] == 0


def test_generate_retries_failed_rows_on_resume(prefkit_cli, mock_backend, inp, prefkit_home):
    def responder(req):
        if req.key == "r3":
            raise BackendError("upstream exploded", status=500, retryable=True)
        return "ok"

    mock_backend.responder = responder
    out = prefkit_home / "out"
    r = prefkit_cli("generate", "--backend", "mock", "--input", str(inp), "-o", str(out), "--max-retries", "1",
                    "--backoff-base", "0.01")
    assert r.exit_code == 1, r.output  # some rows failed after retries: exit 1, the summary says how to resume
    err = " ".join(r.stderr.split())
    assert "1 requests failed" in err and "upstream exploded" in err and "(r3;" in err and "re-run" in err
    assert [f["key"] for f in Run.load(out).failures()] == ["r3"]
    mock_backend.responder = None
    mock_backend.reset()
    r = prefkit_cli("generate", "--backend", "mock", "--input", str(inp), "-o", str(out))
    assert r.exit_code == 0 and list(mock_backend.calls) == ["r3"]
    assert len(Run.load(out).results()) == 6 and Run.load(out).failures() == []


def test_generate_identity_mismatch_is_refused(prefkit_cli, mock_backend, inp, prefkit_home):
    out = prefkit_home / "out"
    assert prefkit_cli("generate", "--backend", "mock", "--input", str(inp), "-o", str(out)).exit_code == 0
    r = prefkit_cli("generate", "--backend", "mock", "--input", str(inp), "-o", str(out), "--temperature", "0.9")
    assert r.exit_code == 2 and "temperature" in r.stderr


def test_generate_dry_run_writes_nothing(prefkit_cli, mock_backend, inp, prefkit_home):
    out = prefkit_home / "out"
    r = prefkit_cli("generate", "--backend", "mock", "--model", "gpt-4o-mini", "--input", str(inp), "-o", str(out),
                    "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    s = r.json()
    assert s["dry_run"] and s["not_sent"] == 6 and s["estimated_cost_usd"] > 0
    assert mock_backend.call_count == 0 and not out.exists()


def test_generate_limit_field_and_bad_input(prefkit_cli, mock_backend, inp, prefkit_home):
    out = prefkit_home / "out"
    r = prefkit_cli("generate", "--backend", "mock", "--input", str(inp), "-o", str(out), "--limit", "2")
    assert r.exit_code == 0 and len(Run.load(out).results()) == 2
    r = prefkit_cli("generate", "--backend", "mock", "--input", str(inp), "--field", "nope")
    assert r.exit_code == 2 and "no column 'nope'" in r.stderr
    r = prefkit_cli("generate", "--backend", "mock", "--input", str(inp), "--field", "other")
    assert r.exit_code == 2 and "must be a string or a list" in r.stderr
    r = prefkit_cli("generate", "--backend", "mock")
    assert r.exit_code == 2 and "--input FILE or --dataset NAME" in r.stderr
    r = prefkit_cli("generate", "--backend", "nosuch", "--input", str(inp))
    assert r.exit_code == 2 and "unknown backend 'nosuch'" in r.stderr


def test_generate_on_the_shared_persona_data(prefkit_cli, mock_backend, persona_data, prefkit_home):
    out = prefkit_home / "out"
    r = prefkit_cli("generate", "--backend", "mock", "--input", str(persona_data / "persona-inference-Mnemonic"),
                    "--split", "train", "--limit", "5", "-o", str(out))
    assert r.exit_code == 0, r.output
    rows = Run.load(out).results()
    assert [x["row_id"] for x in rows] == ["0", "1", "2", "3", "4"]
    assert rows[0]["text"].startswith("mock answer: ")


def test_generate_against_an_openai_compatible_server(prefkit_cli, fake_openai_server, inp, prefkit_home):
    out = prefkit_home / "out"
    r = prefkit_cli("generate", "--backend", "openai", "--model", "my-local-model", "--base-url",
                    fake_openai_server.url, "--input", str(inp), "-o", str(out), "--stop", "a,b", "--stop", "c",
                    "--max-tokens", "20")
    assert r.exit_code == 0, r.output
    assert len(Run.load(out).results()) == 6
    assert fake_openai_server.bodies[0]["stop"] == ["a", "b", "c"] and fake_openai_server.bodies[0]["max_tokens"] == 20
    assert "cost unknown" in " ".join(r.stderr.split())  # no price for a local model name


def test_generate_missing_key_is_one_line(prefkit_cli, inp):
    r = prefkit_cli("generate", "--backend", "openai", "--input", str(inp))
    assert r.exit_code == 1
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "OPENAI_API_KEY" in lines[0]


def test_keys_set_list_unset(prefkit_cli, prefkit_home):
    r = prefkit_cli("keys", "set", "OPENAI_API_KEY", input="sk-stored-abcdefgh12345\n")
    assert r.exit_code == 0, r.output
    path = prefkit_home / "home" / "keys.json"
    assert json.loads(path.read_text()) == {"OPENAI_API_KEY": "sk-stored-abcdefgh12345"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    r = prefkit_cli("keys", "list", "--json")
    row = [x for x in r.json() if x["name"] == "OPENAI_API_KEY"][0]
    assert row["source"] == "keys.json" and "abcdefgh" not in row["value"]
    assert "sk-stored-abcdefgh12345" not in r.output
    assert prefkit_cli("keys", "unset", "OPENAI_API_KEY").exit_code == 0
    assert json.loads(path.read_text()) == {}
    r = prefkit_cli("keys", "set", "bad name", "--value", "x")
    assert r.exit_code == 2


def test_backends_and_models_listing(prefkit_cli):
    r = prefkit_cli("backends", "--json")
    names = {b["name"] for b in r.json()}
    assert {"hf", "openai", "anthropic", "cohere", "mock"} <= names
    r = prefkit_cli("models", "list", "--json")
    assert any(m["name"] == "smollm2" and m["hub_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct" for m in r.json())
    r = prefkit_cli("models", "path", "smollm2")
    assert r.exit_code == 0 and "SmolLM2-135M-Instruct" in r.stdout


def test_help_stays_light():
    import subprocess
    import sys

    code = ("import sys, prefkit.cli as c; c._register_plugin_commands(); "
            "heavy=[m for m in ('torch','transformers','openai','anthropic','cohere','datasets') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
