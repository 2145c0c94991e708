"""Conversation throughput: prefkit's run_dialogues against the concurrency bound and a hand-written SDK loop.

Workload (issue 10): 500 conversations x 10 turns x 3 dependent calls per turn
(user simulator -> responder -> judge, each a different model), against the
fake OpenAI-compatible server in its own process with a fixed latency per
request (100 ms), 64 requests in flight at most. The best possible throughput
is ``concurrency / latency`` calls per second (640/s); prefkit's ratio to it is
the first number. The second is a plain ``asyncio`` loop over the official
``openai`` SDK (``AsyncOpenAI.chat.completions.create`` under a semaphore)
running the same dialogues without storage, resume or accounting: prefkit must
not be slower. The two run interleaved (``--repeats`` rounds), with the run
store on for prefkit (every call and turn written to results.jsonl).

    python benchmarks/conversations.py                      # the issue's workload
    python benchmarks/conversations.py --convs 100 --turns 5 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "prefkit.testing.backends", "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"the fake server did not start (got {url!r})")
    return proc, url


def server_stats(url: str) -> dict:
    with urllib.request.urlopen(url.rsplit("/v1", 1)[0] + "/_stats") as r:
        return json.loads(r.read())


def prompts(conv: str, turn: int, history: list[str]) -> list[dict]:
    return [{"role": "system", "content": f"[{conv}/{turn}] You are a simulated user."},
            *({"role": "assistant", "content": h} for h in history[-2:]),
            {"role": "user", "content": "Ask your next question."}]


# --------------------------------------------------------------------------- prefkit
def run_prefkit(url: str, convs: int, turns: int, concurrency: int) -> dict:
    import prefkit

    async def step(turn):
        history = [t["answer"] for t in turn.history]
        user = await turn.ask("user", prompts(turn.conversation, turn.index, history))
        answer = await turn.ask("responder", [{"role": "user", "content": user.text}])
        verdict = await turn.ask("judge", [{"role": "user", "content": f"Rate: {answer.text}"}])
        return {"question": user.text, "answer": answer.text, "verdict": verdict.text}

    engine = prefkit.BackendOptions(concurrency=concurrency, cache=False, max_tokens=64)
    roles = prefkit.Roles.from_specs({r: prefkit.RoleSpec(backend="openai", model=f"{r}-model", base_url=url)
                                      for r in ("user", "responder", "judge")}, engine=engine)
    dialogues = [prefkit.Dialogue(f"c{i}", max_turns=turns) for i in range(convs)]
    with tempfile.TemporaryDirectory() as d:
        run = prefkit.Run.open("bench conversations", output_dir=d)
        t0, c0 = time.perf_counter(), time.process_time()
        result = prefkit.run_dialogues(dialogues, step, roles=roles, run=run, progress=False)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        run.close()
    s = result.summary
    assert s["conversations_done"] == convs, s
    return {"calls": s["sent"], "elapsed_s": elapsed, "cpu_s": cpu, "turns": s["turns_committed"]}


# --------------------------------------------------------------------------- hand-written SDK loop
def run_sdk(url: str, convs: int, turns: int, concurrency: int) -> dict:
    import openai

    async def main() -> dict:
        client = openai.AsyncOpenAI(api_key="not-needed", base_url=url, max_retries=0, timeout=120)
        sem = asyncio.Semaphore(concurrency)
        calls = 0

        async def ask(model: str, messages: list[dict]) -> str:
            nonlocal calls
            async with sem:
                r = await client.chat.completions.create(model=model, messages=messages, max_tokens=64)
            calls += 1
            return r.choices[0].message.content

        async def conversation(i: int) -> None:
            history: list[str] = []
            for t in range(turns):
                q = await ask("user-model", prompts(f"c{i}", t, history))
                a = await ask("responder-model", [{"role": "user", "content": q}])
                await ask("judge-model", [{"role": "user", "content": f"Rate: {a}"}])
                history.append(a)

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(conversation(i) for i in range(convs)))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        await client.close()
        return {"calls": calls, "elapsed_s": elapsed, "cpu_s": cpu, "turns": convs * turns}

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--convs", type=int, default=500)
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--latency", type=float, default=0.1)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--repeats", type=int, default=1, help="interleaved rounds (prefkit, SDK) to run")
    p.add_argument("--json", help="write the numbers to this file")
    a = p.parse_args(argv)
    os.environ.setdefault("PREFKIT_HOME", tempfile.mkdtemp(prefix="prefkit-bench-home-"))
    bound = a.concurrency / a.latency
    import openai  # noqa: F401 - the one-time SDK import stays out of both timed windows

    import prefkit.conversations  # noqa: F401
    proc, url = start_server(a.latency)
    rows = {"prefkit": [], "sdk": []}
    try:
        for r in range(a.repeats):
            for name, fn in (("prefkit", run_prefkit), ("sdk", run_sdk)) if r % 2 == 0 else \
                    (("sdk", run_sdk), ("prefkit", run_prefkit)):
                before = server_stats(url)
                m = fn(url, a.convs, a.turns, a.concurrency)
                after = server_stats(url)
                m["calls_per_s"] = m["calls"] / m["elapsed_s"]
                m["cpu_ms_per_call"] = 1000 * m["cpu_s"] / m["calls"]
                m["ratio_to_bound"] = m["calls_per_s"] / bound
                m["server_max_in_flight"] = after["max_in_flight"]
                m["server_requests"] = after["requests"] - before["requests"]
                rows[name].append(m)
                print(f"{name:8s} round {r + 1}: {m['calls']} calls in {m['elapsed_s']:.1f}s = {m['calls_per_s']:.0f} "
                      f"calls/s ({m['ratio_to_bound']:.2f} of the {bound:.0f}/s bound), client CPU "
                      f"{m['cpu_ms_per_call']:.2f} ms/call", flush=True)
    finally:
        proc.terminate()
        proc.wait()
    best = {k: max(v, key=lambda m: m["calls_per_s"]) for k, v in rows.items()}
    out = {"workload": {"conversations": a.convs, "turns": a.turns, "calls_per_turn": 3, "latency_s": a.latency,
                        "concurrency": a.concurrency, "bound_calls_per_s": bound, "repeats": a.repeats,
                        "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
           "prefkit": rows["prefkit"], "sdk": rows["sdk"],
           "prefkit_ratio_to_bound": best["prefkit"]["ratio_to_bound"],
           "prefkit_vs_sdk": best["prefkit"]["calls_per_s"] / best["sdk"]["calls_per_s"],
           "cpu_per_call_prefkit_over_sdk": best["prefkit"]["cpu_ms_per_call"] / best["sdk"]["cpu_ms_per_call"]}
    print(f"prefkit: {out['prefkit_ratio_to_bound']:.2f} of the concurrency bound (target >= 0.8); "
          f"{out['prefkit_vs_sdk']:.2f}x the hand-written SDK loop (target >= 1.0); client CPU per call "
          f"{out['cpu_per_call_prefkit_over_sdk']:.2f}x the SDK loop's")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
