"""The openai backend through the official SDK against a real local HTTP server, with injected faults."""

import json

import pytest

from prefkit.backends import ChatRequest, complete, run_requests
from prefkit.errors import PrefkitError
from prefkit.runs import Run
from prefkit.testing.backends import FakeOpenAIServer, FakeReply

from .conftest import fast


def reqs(n):
    return [ChatRequest(key=str(i), messages=[{"role": "system", "content": "be brief"},
                                               {"role": "user", "content": f"prompt number {i}"}]) for i in range(n)]


def test_basic_completion_through_the_sdk(fake_openai_server):
    out = complete(reqs(3), fast(backend="openai", model="gpt-4o-mini", base_url=fake_openai_server.url,
                                 max_tokens=50, temperature=0.3, seed=7, stop=["END"]), progress=False)
    assert [c.text for c in out] == [f"echo: prompt number {i}" for i in range(3)]
    assert out[0].finish_reason == "stop" and out[0].usage == {"prompt_tokens": 5, "completion_tokens": 4}
    body = fake_openai_server.bodies[0]
    assert body["model"] == "gpt-4o-mini" and body["max_tokens"] == 50 and body["temperature"] == 0.3
    assert body["seed"] == 7 and body["stop"] == ["END"] and body["messages"][0]["role"] == "system"


def test_extra_options_reach_the_server(fake_openai_server):
    r = [ChatRequest(key="a", messages="hi", extra={"top_p": 0.5, "top_k": 20})]
    complete(r, fast(backend="openai", model="m", base_url=fake_openai_server.url), progress=False)
    body = fake_openai_server.bodies[0]
    assert body["top_p"] == 0.5 and body["top_k"] == 20  # unknown options go into the JSON body (vLLM style)


def test_finish_reason_length(fake_openai_server):
    fake_openai_server.responder = lambda req: "one two three four five six"
    out = complete([ChatRequest(key="a", messages="x", max_tokens=2)],
                   fast(backend="openai", model="m", base_url=fake_openai_server.url), progress=False)
    assert out[0].text == "one two" and out[0].finish_reason == "length"


@pytest.mark.parametrize("faults", [
    {"429": 0.3}, {"500": 0.3}, {"drop": 0.3}, {"slow": 0.3},
    {"429": 0.15, "500": 0.15, "drop": 0.1, "slow": 0.1},
])
def test_fault_injection_every_item_completes_none_twice(fake_openai_server, faults, tmp_path):
    server = fake_openai_server
    server.faults = faults
    server.retry_after = 0.02
    server.slow_s = 0.05
    server.max_faults_per_key = 2
    with Run.open("t", output_dir=tmp_path / "run") as run:
        s = run_requests(reqs(60), fast(backend="openai", model="m", base_url=server.url, concurrency=16,
                                        max_retries=4, timeout=5), run=run, progress=False, quiet=True)
    assert s["completed"] == 60 and s["failed"] == 0, s["errors"]
    assert sum(server.fault_counts.values()) > 0
    assert s["retries"] > 0 or set(faults) == {"slow"}  # a slow answer is not retried
    assert server.duplicates() == {} and len(server.success_counts) == 60
    results = Run.load(tmp_path / "run").results()
    assert sorted(int(r["key"]) for r in results) == list(range(60))
    assert all(r["text"] == f"echo: prompt number {r['key']}" for r in results)
    # a re-run of the finished job makes zero requests
    before = server.request_count
    with Run.open("t", output_dir=tmp_path / "run") as run:
        s = run_requests(reqs(60), fast(backend="openai", model="m", base_url=server.url), run=run, progress=False,
                         quiet=True)
    assert server.request_count == before and s["sent"] == 0


def test_hung_requests_time_out_and_are_retried(fake_openai_server):
    server = fake_openai_server
    server.hang_s = 5
    server.queue_faults("hang", "hang")
    out = complete(reqs(4), fast(backend="openai", model="m", base_url=server.url, concurrency=4, timeout=0.3),
                   progress=False)
    assert all(c.ok for c in out)
    assert server.fault_counts["hang"] == 2 and server.duplicates() == {}


def test_retry_after_header_is_honoured(fake_openai_server):
    import time

    server = fake_openai_server
    server.retry_after = 0.4
    server.queue_faults("429")
    t = time.monotonic()
    out = complete(reqs(1), fast(backend="openai", model="m", base_url=server.url), progress=False)
    assert out[0].ok and time.monotonic() - t >= 0.4


def test_persistent_server_errors_fail_after_bounded_attempts(fake_openai_server):
    fake_openai_server.responder = lambda req: FakeReply(503, text="overloaded, try later")
    out = complete(reqs(2), fast(backend="openai", model="m", base_url=fake_openai_server.url, max_retries=2),
                   progress=False)
    assert not out[0].ok and out[0].text is None
    assert "overloaded, try later" in out[0].error and "3 attempts" in out[0].error
    assert fake_openai_server.request_count == 6


def test_bad_request_fails_fast_with_the_providers_message(fake_openai_server):
    def responder(req):
        if req.prompt.endswith("1"):
            return FakeReply(400, {"error": {"message": "maximum context length exceeded", "type": "invalid_request_error"}})
        return "fine"

    fake_openai_server.responder = responder
    out = complete(reqs(3), fast(backend="openai", model="m", base_url=fake_openai_server.url), progress=False)
    assert out[0].ok and out[2].ok
    assert "maximum context length exceeded" in out[1].error and "400" in out[1].error
    assert fake_openai_server.seen["prompt number 1"] == 1


@pytest.mark.parametrize("status", [401, 404])
def test_auth_and_not_found_stop_the_run(fake_openai_server, status):
    fake_openai_server.responder = lambda req: FakeReply(status, {"error": {"message": f"nope {status}"}})
    with pytest.raises(PrefkitError, match=f"nope {status}"):
        complete(reqs(40), fast(backend="openai", model="m", base_url=fake_openai_server.url, concurrency=2),
                 progress=False)
    assert fake_openai_server.request_count < 40


def test_missing_key_is_one_clear_error_naming_the_variable():
    with pytest.raises(PrefkitError) as exc:
        complete(reqs(1), fast(backend="openai", model="gpt-4o-mini"), progress=False)
    msg = str(exc.value)
    assert "OPENAI_API_KEY" in msg and "prefkit keys set OPENAI_API_KEY" in msg and "\n" not in msg


def test_key_from_dotenv_and_store_reaches_the_server(fake_openai_server, prefkit_home, monkeypatch):
    from prefkit.backends.keys import set_key

    # OpenAI itself needs a key; point the SDK's default URL at the fake server through the options
    (prefkit_home / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv-123456789\n")
    complete(reqs(1), fast(backend="openai", model="m", base_url=fake_openai_server.url), progress=False)
    assert fake_openai_server.headers_seen[-1]["authorization"] == "Bearer sk-from-dotenv-123456789"
    (prefkit_home / ".env").unlink()
    set_key("OPENAI_API_KEY", "sk-from-store-987654321")
    complete(reqs(2), fast(backend="openai", model="m", base_url=fake_openai_server.url), progress=False)
    assert fake_openai_server.headers_seen[-1]["authorization"] == "Bearer sk-from-store-987654321"


def test_keys_never_reach_manifest_results_or_failures(fake_openai_server, prefkit_home, monkeypatch, prefkit_cli):
    secret = "sk-test-SECRET-abcdefghijklmnop"
    monkeypatch.setenv("OPENAI_API_KEY", secret)

    def responder(req):
        if req.prompt == "p1":
            return FakeReply(400, {"error": {"message": f"Incorrect request for key {secret}"}})
        return "ok"

    fake_openai_server.responder = responder
    inp = prefkit_home / "in.jsonl"
    inp.write_text("\n".join(json.dumps({"id": f"r{i}", "prompt": f"p{i}"}) for i in range(3)) + "\n")
    out = prefkit_home / "out"
    r = prefkit_cli("generate", "--backend", "openai", "--model", "gpt-4o-mini", "--base-url", fake_openai_server.url,
                    "--input", str(inp), "-o", str(out), "--no-cache")
    assert r.exit_code == 1, r.output  # ExitCode.ITEMS_FAILED: one item failed after retries
    assert secret not in r.output
    for f in out.iterdir():
        assert secret not in f.read_text(), f.name
    assert len(Run.load(out).results()) == 2 and len(Run.load(out).failures()) == 1
