"""A multi-role dialogue run against a fake LLM server, used in-process and as a subprocess (SIGKILL test).

Three roles: ``user`` (openai:user-model), ``responder``
(openai:resp-model, two candidates per call through OpenAI's native ``n``; the
turn's RNG picks the one that continues) and ``judge`` (openai:judge-model, or anthropic:judge-model with
``judge_backend="anthropic"``; a structured yes/no answer, re-asked when unparseable). Every call's first
message carries ``[conversation/turn]`` so the server can count requests per turn.

    python tests/conversations/dialogue_worker.py --url http://127.0.0.1:PORT --out DIR [--convs N --turns T]
"""

from __future__ import annotations

import argparse
import hashlib
import re

import prefkit

TAG = re.compile(r"\[(c\d+)/(\d+)\]")


def digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:8]


async def step(turn):
    tag = f"[{turn.conversation}/{turn.index}]"
    convo = [m for t in turn.history for m in t["messages"]]
    user = await turn.ask("user", [{"role": "system", "content": f"{tag} You are user {turn.data}. Ask one question."},
                                   *convo, {"role": "user", "content": "Your next question?"}])
    answers = await turn.ask("responder", [{"role": "system", "content": f"{tag} Be helpful."}, *convo,
                                           {"role": "user", "content": user.text}], n=2)
    pick = turn.rng.randrange(2)
    verdict = await turn.ask_structured("judge", [{"role": "system", "content": f"{tag} You judge answers."},
                                                  {"role": "user", "content": f"Good answer? {answers.texts[pick]}"}],
                                        prefkit.Choice(["yes", "no"]))
    if verdict.value == "no" and turn.rng.random() < 0.3:
        turn.end()
    return {"messages": [{"role": "user", "content": user.text},
                         {"role": "assistant", "content": answers.texts[pick]}],
            "pick": pick, "verdict": verdict.value, "reasks": verdict.reasks}


def server_script():
    """The fake server's answers: deterministic in the request, so two runs see the same conversation."""
    from prefkit.testing import Script

    def user(req):
        return f"question {digest(str(req.messages))}?"

    def responder(req):
        return f"answer {req.candidate} {digest(str(req.messages))}"

    def judge(req):
        if "could not read" in str(req.messages[-1].get("content")):
            return "no"  # the re-ask
        h = int(digest(str(req.messages)), 16) % 10
        return "maybe" if h == 0 else ("yes" if h < 6 else "no")

    return Script().on(model="user-model", reply=user).on(model="resp-model", reply=responder) \
        .on(model="judge-model", reply=judge)


def server_key(req) -> str:
    """Requests are counted per call: its turn tag, model and full message list."""
    first = str(req.messages[0].get("content")) if req.messages else ""
    m = TAG.search(first)
    tag = f"{m.group(1)}/{m.group(2)}" if m else "?"
    return f"{tag}|{req.model}|{digest(str(req.messages))}"


def roles(url: str, root_url: str, concurrency: int = 16, judge_backend: str = "openai") -> prefkit.Roles:
    engine = prefkit.BackendOptions(concurrency=concurrency, cache=False, backoff_base=0.01, backoff_max=0.1,
                                    max_retries=8, timeout=60)
    return prefkit.Roles.from_specs({
        "user": prefkit.RoleSpec(backend="openai", model="user-model", base_url=url),
        "responder": prefkit.RoleSpec(backend="openai", model="resp-model", base_url=url, temperature=0.7),
        "judge": prefkit.RoleSpec(backend=judge_backend, model="judge-model",
                                  base_url=root_url if judge_backend == "anthropic" else url, max_tokens=16),
    }, engine=engine)


def dialogues(n: int, turns: int) -> list[prefkit.Dialogue]:
    return [prefkit.Dialogue(f"c{i}", data=f"persona-{i}", max_turns=turns) for i in range(n)]


def run(url: str, root_url: str, out: str, *, convs: int, turns: int, seed: int = 0, concurrency: int = 16,
        judge_backend: str = "openai"):
    r = prefkit.Run.open("test dialogues", output_dir=out, identity={"convs": convs, "turns": turns, "seed": seed})
    try:
        return prefkit.run_dialogues(dialogues(convs, turns), step, roles=roles(url, root_url, concurrency, judge_backend),
                                     run=r,
                                     seed=seed, progress=False)
    finally:
        r.close()


def conversations(out: str) -> dict[str, list]:
    """Committed turn records per conversation, read back from a run directory."""
    rows = prefkit.Run.load(out).results()
    convs: dict[str, list] = {}
    for row in sorted((r for r in rows if r.get("kind") == "turn"), key=lambda r: (r["conversation"], r["turn"])):
        convs.setdefault(row["conversation"], []).append(row["record"])
    return convs


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--convs", type=int, default=40)
    p.add_argument("--turns", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--concurrency", type=int, default=8)
    a = p.parse_args()
    res = run(a.url + "/v1", a.url, a.out, convs=a.convs, turns=a.turns, seed=a.seed, concurrency=a.concurrency)
    print(res.summary["conversations_done"], flush=True)
