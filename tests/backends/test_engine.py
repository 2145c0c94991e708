"""The engine with the mock backend: order, retries, fail-fast, resume, cache, budget, dry run, limits."""

import asyncio
import random
import time

import pytest

from prefkit.backends import BackendError, ChatRequest, Completion, complete, run_requests
from prefkit.backends.engine import backoff_delay
from prefkit.backends.limits import TokenBucket
from prefkit.errors import PrefkitError, UsageError
from prefkit.runs import Run
from prefkit.testing.backends import MockBackend

from .conftest import fast


def reqs(n, prefix="q"):
    return [ChatRequest(key=f"{prefix}{i}", messages=f"question {i}") for i in range(n)]


def test_complete_keeps_input_order_and_usage():
    mock = MockBackend(latency=0.0)
    mock.responder = lambda r: "answer to " + r.messages[-1]["content"]
    out = complete(reqs(50), fast(backend="mock", concurrency=8), backend=mock, progress=False)
    assert [c.key for c in out] == [f"q{i}" for i in range(50)]
    assert all(c.ok for c in out)
    assert out[7].text == "answer to question 7"
    assert out[7].usage == {"prompt_tokens": 2, "completion_tokens": 4}
    assert sum(mock.calls.values()) == 50


def test_strings_and_dicts_become_requests():
    out = complete(["hello", {"key": "k", "messages": "bye"}], fast(backend="mock"), backend=MockBackend(),
                   progress=False)
    assert [c.key for c in out] == ["0", "k"]
    assert out[1].text == "mock answer: bye"


def test_concurrency_is_bounded():
    probe = MockBackend(latency=0.01)
    t = time.monotonic()
    out = complete(reqs(60), fast(backend="mock", concurrency=6), backend=probe, progress=False)
    assert all(c.ok for c in out)
    assert probe.peak_in_flight == 6
    assert time.monotonic() - t < 0.5  # 10 rounds of 10 ms, not 60 sequential ones


def test_retryable_errors_are_retried_until_success_and_none_twice():
    rng = random.Random(0)

    def flaky(r):
        if mock.calls[r.key] <= 2 and rng.random() < 0.5:
            raise BackendError("busy", status=rng.choice([429, 500, 503]), retryable=True)
        return "ok " + r.key

    mock = MockBackend(responder=flaky)
    out = complete(reqs(80), fast(backend="mock", concurrency=16, max_retries=5), backend=mock, progress=False)
    assert all(c.ok for c in out), [c.error for c in out if not c.ok]
    assert all(n == 1 for n in mock.successes.values()) and len(mock.successes) == 80
    assert sum(mock.calls.values()) > 80  # some were retried


def test_attempts_are_bounded_and_failure_is_an_error_not_empty_text():
    mock = MockBackend(responder=lambda r: (_ for _ in ()).throw(BackendError("overloaded", status=529, retryable=True)))
    out = complete(reqs(3), fast(backend="mock", max_retries=2), backend=mock, progress=False)
    assert all(not c.ok and c.text is None for c in out)
    assert "overloaded" in out[0].error and "after 3 attempts" in out[0].error
    assert all(n == 3 for n in mock.calls.values())


def test_non_retryable_error_fails_fast_with_the_providers_message():
    def bad(r):
        if r.key == "q1":
            raise BackendError("This model's maximum context length is 8192 tokens", status=400)
        return "fine"

    mock = MockBackend(responder=bad)
    out = complete(reqs(3), fast(backend="mock", max_retries=5), backend=mock, progress=False)
    assert out[0].ok and out[2].ok
    assert not out[1].ok and "maximum context length" in out[1].error and "HTTP 400" in out[1].error
    assert mock.calls["q1"] == 1  # no retry for a 400


def test_auth_error_stops_the_run_with_one_clear_message():
    mock = MockBackend(responder=lambda r: (_ for _ in ()).throw(BackendError("Incorrect API key provided", status=401)))
    with pytest.raises(PrefkitError, match="Incorrect API key provided"):
        complete(reqs(50), fast(backend="mock", concurrency=2), backend=mock, progress=False)
    assert sum(mock.calls.values()) < 50  # it stopped instead of failing all 50


def test_empty_completion_is_an_error():
    out = complete(reqs(2), fast(backend="mock"), backend=MockBackend(responder=lambda r: "  "), progress=False)
    assert not out[0].ok and out[0].text is None and "empty completion" in out[0].error


def test_backoff_has_full_jitter_and_honours_retry_after():
    rng = random.Random(1)
    delays = [backoff_delay(3, 0.5, 30, None, rng) for _ in range(500)]
    assert 0 <= min(delays) < 0.2 and 1.8 < max(delays) <= 2.0  # uniform(0, 0.5 * 2**2)
    assert all(backoff_delay(10, 0.5, 4, None, rng) <= 4 for _ in range(100))  # capped
    assert all(backoff_delay(1, 0.5, 30, 7.0, rng) >= 7.0 for _ in range(100))  # never before Retry-After


def test_retry_after_is_honoured_by_the_engine():
    seen = []

    def once_429(r):
        seen.append(time.monotonic())
        if len(seen) == 1:
            raise BackendError("slow down", status=429, retryable=True, retry_after=0.3)
        return "ok"

    out = complete(reqs(1), fast(backend="mock"), backend=MockBackend(responder=once_429), progress=False)
    assert out[0].ok and seen[1] - seen[0] >= 0.3


def test_token_bucket_limits_the_rate():
    async def go():
        bucket = TokenBucket(per_minute=600)  # 10/s, capacity 10
        t = time.monotonic()
        for _ in range(25):
            await bucket.acquire(1)
        return time.monotonic() - t

    elapsed = asyncio.run(go())
    assert 1.3 < elapsed < 2.5  # 10 at once, then 15 more at 10/s


def test_rpm_limit_applies_to_the_engine():
    t = time.monotonic()
    out = complete(reqs(12), fast(backend="mock", rpm=600, concurrency=12), backend=MockBackend(), progress=False)
    assert all(c.ok for c in out)
    assert time.monotonic() - t >= 0.15  # 10 immediately, 2 more at 10/s


def test_tpm_big_request_is_not_starved():
    r = [ChatRequest(key="big", messages="x" * 4000, max_tokens=500)]
    out = complete(r, fast(backend="mock", tpm=6000), backend=MockBackend(), progress=False)
    assert out[0].ok


def test_duplicate_keys_are_rejected():
    with pytest.raises(UsageError, match="share the key"):
        complete([ChatRequest(key="a", messages="x"), ChatRequest(key="a", messages="y")], fast(backend="mock"),
                 backend=MockBackend(), progress=False)


# ------------------------------------------------------------------ run store
def test_run_requests_resume_makes_zero_requests(tmp_path):
    mock = MockBackend()
    with Run.open("t", output_dir=tmp_path / "run") as run:
        s1 = run_requests(reqs(20), fast(backend="mock"), run=run, backend=mock, progress=False, quiet=True)
    assert s1["completed"] == 20 and mock.call_count == 20
    rows = Run.load(tmp_path / "run").results()
    assert {r["key"] for r in rows} == {f"q{i}" for i in range(20)}
    assert rows[0]["text"].startswith("mock answer") and "usage" in rows[0] and "finish_reason" in rows[0]
    mock.reset()
    with Run.open("t", output_dir=tmp_path / "run") as run:
        s2 = run_requests(reqs(20), fast(backend="mock"), run=run, backend=mock, progress=False, quiet=True)
    assert mock.call_count == 0 and s2["already_done"] == 20 and s2["sent"] == 0
    metrics = Run.load(tmp_path / "run").metrics()["llm"]
    assert metrics["sent"] == 20 and metrics["results"] == 20 and metrics["completion_tokens"] > 0


def test_failures_are_recorded_and_retried_on_resume(tmp_path):
    broken = {"q3", "q5"}

    def responder(r):
        if r.key in broken:
            raise BackendError("bad gateway", status=502, retryable=True)
        return "fine"

    mock = MockBackend(responder=responder)
    with Run.open("t", output_dir=tmp_path / "run") as run:
        s = run_requests(reqs(8), fast(backend="mock", max_retries=1), run=run, backend=mock, progress=False,
                         quiet=True)
    assert s["failed"] == 2 and s["completed"] == 6
    loaded = Run.load(tmp_path / "run")
    assert {f["key"] for f in loaded.failures()} == broken
    assert len(loaded.results()) == 6  # no empty answers were stored for failures
    broken.clear()
    mock.reset()
    with Run.open("t", output_dir=tmp_path / "run") as run:
        s = run_requests(reqs(8), fast(backend="mock"), run=run, backend=mock, progress=False, quiet=True)
    assert set(mock.calls) == {"q3", "q5"} and s["completed"] == 2
    assert Run.load(tmp_path / "run").failures() == []


def test_on_result_shapes_records_and_its_errors_are_failures(tmp_path):
    def on_result(c):
        if c.key == "q1":
            raise ValueError("unparseable")
        if c.key == "q2":
            return None
        return {"answer": c.text.upper()}

    with Run.open("t", output_dir=tmp_path / "run") as run:
        s = run_requests(reqs(4), fast(backend="mock"), run=run, on_result=on_result, backend=MockBackend(),
                         progress=False, quiet=True)
    loaded = Run.load(tmp_path / "run")
    assert {r["key"] for r in loaded.results()} == {"q0", "q3"}
    assert loaded.results()[0]["answer"] == "MOCK ANSWER: QUESTION 0"
    assert [f["key"] for f in loaded.failures()] == ["q1"] and "unparseable" in loaded.failures()[0]["error"]
    assert s["failed"] == 1


# ------------------------------------------------------------------ cache, budget, dry run
def test_cache_serves_repeats_and_no_cache_bypasses_it():
    mock = MockBackend(cacheable=True)
    o = fast(backend="mock", cache=True)
    complete(reqs(5), o, backend=mock, progress=False)
    assert mock.call_count == 5
    out = complete(reqs(5, prefix="other-key-"), o, backend=mock, progress=False)  # same content, new keys
    assert mock.call_count == 5 and all(c.cached and c.ok for c in out)
    assert out[0].key == "other-key-0" and out[0].text == "mock answer: question 0"
    complete(reqs(5), o.replace(cache=False), backend=mock, progress=False)
    assert mock.call_count == 10
    complete(reqs(5), o.replace(temperature=0.5), backend=mock, progress=False)  # other params, other entry
    assert mock.call_count == 15
    salted = [ChatRequest(key="s", messages="question 0", meta={"cache_salt": 1})]
    complete(salted, o, backend=mock, progress=False)
    assert mock.call_count == 16


def test_failures_are_not_cached():
    mock = MockBackend(cacheable=True, responder=lambda r: (_ for _ in ()).throw(BackendError("no", status=400)))
    complete(reqs(2), fast(backend="mock", cache=True), backend=mock, progress=False)
    mock.responder = None
    out = complete(reqs(2), fast(backend="mock", cache=True), backend=mock, progress=False)
    assert all(c.ok and not c.cached for c in out)


def test_max_cost_stops_cleanly(tmp_path):
    from prefkit.backends.pricing import register_price

    register_price("pricey", input=1_000_000.0, output=1_000_000.0)  # $1 per token
    mock = MockBackend()
    with Run.open("t", output_dir=tmp_path / "run") as run:
        # each request: ~5 prompt tokens (estimate) + max 3 completion tokens ≈ $8
        s = run_requests(reqs(20), fast(backend="mock", model="pricey", max_tokens=3, max_cost=40.0, concurrency=1),
                         run=run, backend=mock, progress=False, quiet=True)
    assert s["stopped"] == "max_cost"
    assert 0 < s["completed"] < 20 and s["cost_usd"] <= 40.0
    assert s["not_sent"] == 20 - s["completed"]
    assert mock.call_count == s["completed"]
    assert len(Run.load(tmp_path / "run").results()) == s["completed"]


def test_max_cost_needs_a_known_price():
    with pytest.raises(UsageError, match="needs a price for mystery-model"):
        complete(reqs(1), fast(backend="mock", model="mystery-model", max_cost=1.0), backend=MockBackend(),
                 progress=False)


def test_dry_run_sends_nothing_and_estimates_cost():
    from prefkit.backends import run_requests

    mock = MockBackend()
    s = run_requests(reqs(10), fast(backend="mock", model="gpt-4o-mini", dry_run=True, max_tokens=100),
                     backend=mock, progress=False, quiet=True)
    assert mock.call_count == 0 and s["dry_run"] and s["not_sent"] == 10
    assert s["estimated_cost_usd"] == pytest.approx(10 * (3 * 0.15 + 100 * 0.60) / 1e6, rel=0.5)


def test_price_table_matches_prefixes_and_user_file(prefkit_home, monkeypatch):
    import json

    from prefkit.backends import pricing

    assert pricing.price_for("gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert pricing.price_for("gpt-4o-2024-08-06") == (2.50, 10.00)
    assert pricing.price_for("anything", backend="hf") == (0.0, 0.0)
    assert pricing.price_for("my-finetune") is None
    f = prefkit_home / "prices.json"
    f.write_text(json.dumps({"my-finetune": {"input": 1.0, "output": 2.0}}))
    monkeypatch.setenv("PREFKIT_PRICES", str(f))
    pricing._user_loaded = False
    assert pricing.cost_of("my-finetune", 1_000_000, 500_000) == pytest.approx(2.0)


def test_locked_cache_never_costs_results(tmp_path, monkeypatch):
    """Another process holding the cache's write lock: the run completes without the cache."""
    import sqlite3

    from prefkit.backends import BackendOptions, ChatRequest, complete
    from prefkit.backends.cache import ResponseCache

    monkeypatch.setenv("PREFKIT_HOME", str(tmp_path))
    ResponseCache().close()  # create the file
    blocker = sqlite3.connect(str(tmp_path / "cache.sqlite"), timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        import prefkit.backends.cache as cache_mod

        monkeypatch.setattr(cache_mod.ResponseCache.__init__, "__defaults__", (None, 0.2))
        from prefkit.testing import MockBackend

        reqs = [ChatRequest(key=str(i), messages=[{"role": "user", "content": f"q{i}"}]) for i in range(3)]
        out = complete(reqs, BackendOptions(backend="mock"), progress=False, backend=MockBackend(cacheable=True))
        assert [c.ok for c in out] == [True, True, True]
        assert not any(c.cached for c in out)
    finally:
        blocker.rollback()
        blocker.close()
