"""The anthropic and cohere backends through their official SDKs, over real HTTP to the local test
server (both SDKs) and over respx-mocked httpx (cohere, whose SDK uses httpx)."""

import json

import httpx
import pytest

from prefkit.backends import ChatRequest, complete
from prefkit.errors import PrefkitError
from prefkit.testing.backends import FakeReply

from .conftest import fast

MSGS = [{"role": "system", "content": "answer briefly"}, {"role": "user", "content": "hello there"}]


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ant-test-key-123456")
    monkeypatch.setenv("CO_API_KEY", "co-test-key-123456")


def test_anthropic_request_shape_and_answer(fake_openai_server, keys):
    out = complete([ChatRequest(key="a", messages=MSGS)],
                   fast(backend="anthropic", model="claude-3-5-haiku-latest", base_url=fake_openai_server.root_url,
                        max_tokens=64, temperature=0.2, stop=["###"]), progress=False)
    assert out[0].ok and out[0].text == "echo: hello there" and out[0].finish_reason == "stop"
    assert out[0].usage == {"prompt_tokens": 4, "completion_tokens": 3}
    body = fake_openai_server.bodies[0]
    assert body["system"] == "answer briefly" and body["messages"] == [{"role": "user", "content": "hello there"}]
    assert body["max_tokens"] == 64 and body["temperature"] == 0.2 and body["stop_sequences"] == ["###"]
    assert fake_openai_server.request_count == 1


def test_cohere_v2_request_shape_and_answer(fake_openai_server, keys):
    out = complete([ChatRequest(key="a", messages=MSGS, max_tokens=1)],
                   fast(backend="cohere", model="command-r-plus", base_url=fake_openai_server.root_url, seed=3),
                   progress=False)
    assert out[0].ok and out[0].text == "echo:" and out[0].finish_reason == "length"
    body = fake_openai_server.bodies[0]
    assert body["model"] == "command-r-plus" and body["messages"] == MSGS and body["seed"] == 3


@pytest.mark.parametrize("backend", ["anthropic", "cohere"])
def test_faults_every_item_completes_none_twice(fake_openai_server, keys, backend):
    server = fake_openai_server
    server.faults = {"429": 0.2, "500": 0.2, "drop": 0.1}
    server.retry_after = 0.02
    server.max_faults_per_key = 2
    reqs = [ChatRequest(key=str(i), messages=f"item {i}") for i in range(30)]
    out = complete(reqs, fast(backend=backend, base_url=server.root_url, concurrency=8, max_retries=4), progress=False)
    assert all(c.ok for c in out), [c.error for c in out if not c.ok]
    assert [c.text for c in out] == [f"echo: item {i}" for i in range(30)]
    assert sum(server.fault_counts.values()) > 0 and server.duplicates() == {}


@pytest.mark.parametrize("backend", ["anthropic", "cohere"])
def test_auth_error_fails_fast_with_the_message(fake_openai_server, keys, backend):
    fake_openai_server.responder = lambda req: FakeReply(401, {"type": "error", "message": "invalid api token",
                                                               "error": {"type": "authentication_error",
                                                                         "message": "invalid api token"}})
    with pytest.raises(PrefkitError, match="invalid api token"):
        complete([ChatRequest(key="a", messages="x")], fast(backend=backend, base_url=fake_openai_server.root_url),
                 progress=False)
    assert fake_openai_server.request_count == 1


@pytest.mark.parametrize("backend,var", [("anthropic", "ANTHROPIC_API_KEY"), ("cohere", "CO_API_KEY")])
def test_missing_key_names_the_variable(backend, var):
    with pytest.raises(PrefkitError, match=f"set {var}") as exc:
        complete([ChatRequest(key="a", messages="x")], fast(backend=backend), progress=False)
    assert f"prefkit keys set {var}" in str(exc.value)


def test_cohere_alternate_key_variable(fake_openai_server, monkeypatch):
    monkeypatch.setenv("COHERE_API_KEY", "co-alt-key-123456")
    out = complete([ChatRequest(key="a", messages="x")], fast(backend="cohere", base_url=fake_openai_server.root_url),
                   progress=False)
    assert out[0].ok and fake_openai_server.headers_seen[0]["authorization"] == "Bearer co-alt-key-123456"


def test_cohere_through_respx(keys):
    respx = pytest.importorskip("respx")
    calls = []

    def handler(request):
        calls.append(json.loads(request.content))
        if len(calls) == 1:
            return httpx.Response(429, json={"message": "too many requests"}, headers={"retry-after": "0"})
        return httpx.Response(200, json={
            "id": "x", "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "Bonjour!"}]},
            "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 2}, "tokens": {"input_tokens": 9, "output_tokens": 2}}})

    with respx.mock(assert_all_called=True) as router:
        router.post("https://api.cohere.com/v2/chat").mock(side_effect=handler)
        out = complete([ChatRequest(key="a", messages="Say hello in French")],
                       fast(backend="cohere", model="command-a-03-2025"), progress=False)
    assert out[0].ok and out[0].text == "Bonjour!" and out[0].usage == {"prompt_tokens": 9, "completion_tokens": 2}
    assert len(calls) == 2 and calls[1]["messages"] == [{"role": "user", "content": "Say hello in French"}]
    assert out[0].attempts == 2
