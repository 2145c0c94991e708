"""ALOE data generation throughput: `aloe generate` against the sequential reference and the concurrency bound.

Workload (issue 12): 300 conversations x 10 turns of the ALOE tree generation (per turn: simulated
user -> persona extractor -> persona-aware and plain reply -> judge in both orders = 6 calls, 4 of
them on the critical path) against the fake OpenAI-compatible server in its own process, with a
fixed latency per request (300 ms), at most 64 requests in flight. Every role is a different model
name over real HTTP (`openai` backend); the run store is on (every call and turn written).

Three reference points, all from the measured call count C:

* the **sequential reference** (the reference implementation: one blocking call after another):
  C x latency;
* the **concurrency bound** (64 requests in flight all the time): C x latency / 64;
* the **critical path** of one conversation (turns x 4 dependent calls x latency), a floor no
  schedule can beat.

The fake server answers each role with a plausible reply built from the request (:func:`demo_reply`:
the simulated user one sentence of its profile, the extractor its two lines, the persona-aware reply
the hint's words, the judge the reply sharing more profile words), so no answer is re-asked, the
judge's two orders agree (no ties) and the call count is exactly 6 per turn. It counts requests by
their whole content (``server_duplicates``: requests whose content repeats; the simulated user cycles
through its profile's sentences and the judge sees only the current message, so some judge requests
repeat within a conversation and are sent again, the cache being off). That no call is sent twice is
``server_requests == calls`` (and ``retries`` 0).

    python benchmarks/aloe_generation.py                        # the issue's workload
    python benchmarks/aloe_generation.py --convs 50 --turns 4 --json out.json
    python benchmarks/aloe_generation.py --serve --latency 0 --port 8123   # the server alone (docs/aloe.md)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

CALLS_PER_TURN = 6          # user, extractor, aware reply, plain reply, judge x 2 orders
CRITICAL_PATH_CALLS = 4     # user -> extractor -> (replies together) -> (both judge orders together)
REFERENCE_CALLS_PER_TURN = 5  # the reference judges one order only


# --------------------------------------------------------------------------- the server (own process)
def role_reply(req) -> str:
    """A plausible answer per role, chosen by the model name the role uses."""
    model = req.model or ""
    n = abs(hash(req.prompt)) % 3
    if model == "user-model":
        return ["I spent the morning at the dog park with my beagle, it was lovely.",
                "Honestly work has been hectic, but my garden keeps me sane.",
                "Just got back from a run by the river, my knees are complaining."][n]
    if model == "extractor-model":
        return "Profile: He has a beagle and likes the outdoors.\nPersonality: None"
    if model == "judge-model":
        return "first"
    return ["That sounds lovely! What's your beagle's name?", "A garden is the best therapy. What do you grow?",
            "Knees always vote against running. How far did you go?"][n]


_WORD = re.compile(r"[A-Za-z]{5,}")


def _section(text: str, head: str, stop: str) -> str:
    return text.split(head, 1)[1].split(stop, 1)[0] if head in text else ""


def demo_reply(req) -> str:
    """The server's replies: they depend on the request, so that the trees look like trees (no ties) and a
    real model under test (docs/aloe.md's worked example) gets a varied conversation and varied scores.

    * ``user-model`` (the simulated user): the k-th sentence of its profile in the first person;
    * ``judge-model`` asked for a score (``aloe bench``): 1 + the number of distinct profile words
      (5+ letters) the reply uses, at most 5: a crude stand-in for a judge, so the numbers only show
      the plumbing;
    * ``extractor-model``: the user's last message as the revealed profile; ``responder-model``: a reply
      naming words of the hint when there is one (the persona-aware reply), a generic one otherwise;
      ``judge-model`` asked which reply (``aloe generate``): the one sharing more profile words;
    * every other role: as :func:`role_reply`.
    """
    msgs = req.messages
    system = str(msgs[0].get("content") or "") if msgs else ""
    if req.model == "user-model" and "Who you are" in system:
        profile = _section(system, "talk about):\n", "\n\n").strip()
        sentences = [x.strip() for x in re.split(r"(?<=[.!?])\s+", profile) if x.strip()] or ["I like to chat."]
        k = (len(msgs) - 2) // 2
        t = sentences[k % len(sentences)]
        for a, b in ((r"^(He|She) is\b", "I am"), (r"^(He|She) has\b", "I have"), (r"^(He|She)\b", "I"),
                     (r"\b(his|her)\b", "my"), (r"\b(He|She) is\b", "I am"), (r"\b(he|she)\b", "I")):
            t = re.sub(a, b, t)
        return t
    last = str(msgs[-1].get("content") or "") if msgs else ""
    if req.model == "extractor-model" and "\nA: " in last:  # what the user's last message said
        said = last.rsplit("\nA: ", 1)[1].strip().split("\n")[0]
        return f"Profile: {said}\nPersonality: None"
    if req.model == "responder-model":
        hint = _section(last, "this user seems to be: ", " Their personality")
        words = [w for w in _WORD.findall(hint) if w.lower() not in ("nothing", "known")][:3]
        if words:  # the persona-aware reply picks up what the extractor found
            return f"That is great! Tell me more about the {', '.join(w.lower() for w in words)} side of things."
        return "That sounds nice. How was the rest of your day?"
    if req.model == "judge-model" and "First reply:" in last:  # pairwise (generate): the more personal reply
        profile = {w.lower() for w in _WORD.findall(_section(last, "Profile:", "\n"))}
        first = {w.lower() for w in _WORD.findall(_section(last, "First reply:\n", "\n\nSecond reply:"))}
        second = {w.lower() for w in _WORD.findall(_section(last, "Second reply:\n", "\n\nWhich"))}
        return "second" if len(profile & second) > len(profile & first) else "first"
    if req.model == "judge-model" and "Score: N" in system:
        body = str(msgs[1].get("content") or "") if len(msgs) > 1 else ""
        profile = {w.lower() for w in _WORD.findall(_section(body, "Profile:", "\n"))}
        reply = {w.lower() for w in _WORD.findall(_section(body, "The chatbot's reply:\n", "\n\nHow well"))}
        return f"Score: {min(5, 1 + len(profile & reply))}\nIt picks up {len(profile & reply)} of the person's topics."
    return role_reply(req)


def request_key(req) -> str:
    """Count requests by their whole content (model + messages), so a duplicate means a request sent twice."""
    import hashlib

    return hashlib.sha256(json.dumps([req.model, req.messages], sort_keys=True).encode()).hexdigest()


def serve(latency: float, port: int = 0) -> None:
    from prefkit.testing import FakeOpenAIServer

    server = FakeOpenAIServer(demo_reply, latency=latency, port=port, key_fn=request_key).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--latency", str(latency)], stdout=subprocess.PIPE,
                            text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"the fake server did not start (got {url!r})")
    return proc, url


def server_stats(url: str) -> dict:
    with urllib.request.urlopen(url.rsplit("/v1", 1)[0] + "/_stats") as r:
        return json.loads(r.read())


# --------------------------------------------------------------------------- one run of aloe generate
def run_generate(url: str, convs: int, turns: int, concurrency: int, workdir: str) -> dict:
    import prefkit
    from prefkit_aloe import pools
    from prefkit_aloe.generate import GenerateConfig, generate

    personas = pools.build_personas(pools.load_pool("profile"), pools.load_pool("personality"), passes=1, seed=0)
    path = os.path.join(workdir, "personas.jsonl")
    pools.write_personas(path, personas[:convs])

    def spec(name: str) -> "prefkit.RoleSpec":
        return prefkit.RoleSpec(backend="openai", model=f"{name}-model", base_url=url)

    engine = prefkit.BackendOptions(concurrency=concurrency, cache=False, max_tokens=64, timeout=120)
    roles = prefkit.Roles.from_specs({"user": spec("user"), "extractor": spec("extractor"),
                                      "responder": [spec("responder")], "judge": spec("judge")}, engine=engine)
    cfg = GenerateConfig(personas=path, conversations=convs, turns=turns)
    t0, c0 = time.perf_counter(), time.process_time()
    res = generate(cfg, roles, output_dir=os.path.join(workdir, "run"), progress=False)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = res.summary
    assert res.status == "done", (res.status, s)
    return {"elapsed_s": elapsed, "cpu_s": cpu, "calls": s["sent"], "turns": s["turns_committed"],
            "conversations_done": s["conversations_done"], "retries": s.get("retries", 0),
            "ties": res.judge.get("ties"), "first_slot_share": res.judge.get("first_slot_share"),
            "aware_wins": res.judge.get("aware_wins")}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--convs", type=int, default=300)
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--latency", type=float, default=0.3)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--repeats", type=int, default=1, help="rounds to run (medians are reported)")
    p.add_argument("--json", help="write the numbers to this file")
    p.add_argument("--serve", action="store_true", help="only run the fake server (prints its URL) until interrupted")
    p.add_argument("--port", type=int, default=0, help="with --serve: the port (default: any free one)")
    a = p.parse_args(argv)
    if a.serve:
        serve(a.latency, a.port)
        return {}
    os.environ.setdefault("PREFKIT_HOME", tempfile.mkdtemp(prefix="prefkit-bench-home-"))
    import openai  # noqa: F401 - the one-time SDK import stays out of the timed window

    import prefkit.conversations  # noqa: F401
    proc, url = start_server(a.latency)
    rounds = []
    try:
        for r in range(a.repeats):
            before = server_stats(url)
            with tempfile.TemporaryDirectory() as d:
                m = run_generate(url, a.convs, a.turns, a.concurrency, d)
            after = server_stats(url)
            m["server_requests"] = after["requests"] - before["requests"]
            m["server_max_in_flight"] = after["max_in_flight"]
            m["server_duplicates"] = after["duplicates"]
            m["load_avg_1m"] = os.getloadavg()[0]
            c = m["calls"]
            m["sequential_s"] = c * a.latency
            m["bound_s"] = c * a.latency / a.concurrency
            m["critical_path_s"] = a.turns * CRITICAL_PATH_CALLS * a.latency
            m["speedup_vs_sequential"] = m["sequential_s"] / m["elapsed_s"]
            m["bound_over_wall"] = m["bound_s"] / m["elapsed_s"]
            m["cpu_ms_per_call"] = 1000 * m["cpu_s"] / c
            rounds.append(m)
            print(f"round {r + 1}: {c} calls ({m['server_requests']} at the server, peak {m['server_max_in_flight']} in "
                  f"flight) in {m['elapsed_s']:.1f} s · sequential {m['sequential_s']:.0f} s → "
                  f"{m['speedup_vs_sequential']:.1f}x faster · concurrency bound {m['bound_s']:.1f} s → "
                  f"{m['bound_over_wall']:.2f} of it · client CPU {m['cpu_ms_per_call']:.2f} ms/call · "
                  f"load {m['load_avg_1m']:.1f}", flush=True)
    finally:
        proc.terminate()
        proc.wait()

    def med(key: str) -> float:
        return statistics.median(m[key] for m in rounds)

    calls = med("calls")
    ref_calls = a.convs * a.turns * REFERENCE_CALLS_PER_TURN
    out = {"workload": {"conversations": a.convs, "turns": a.turns, "calls_per_turn": CALLS_PER_TURN,
                        "latency_s": a.latency, "concurrency": a.concurrency, "repeats": a.repeats,
                        "cpus": os.cpu_count()},
           "rounds": rounds,
           "median": {k: med(k) for k in ("elapsed_s", "calls", "sequential_s", "bound_s", "speedup_vs_sequential",
                                          "bound_over_wall", "cpu_ms_per_call", "load_avg_1m")},
           "critical_path_s": a.turns * CRITICAL_PATH_CALLS * a.latency,
           "reference_sequential_s": ref_calls * a.latency, "reference_calls": ref_calls}
    mm = out["median"]
    print(f"median of {a.repeats}: {calls:.0f} calls in {mm['elapsed_s']:.1f} s: {mm['speedup_vs_sequential']:.1f}x "
          f"the sequential reference at the same call count ({mm['sequential_s']:.0f} s; the reference's own "
          f"{ref_calls} calls: {out['reference_sequential_s']:.0f} s), {mm['bound_over_wall']:.2f} of the "
          f"concurrency bound ({mm['bound_s']:.1f} s); critical path {out['critical_path_s']:.0f} s")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
