"""``prefkit hello-chat``: a worked multi-turn, multi-role example on the conversation API.

For every pair in the plugin's ``hello-prefs`` dataset a simulated **user** (who
has the pair's persona) talks with an **assistant** for a few turns; the
assistant proposes two candidate answers per turn, a **judge** scores both
(1-5, a structured answer, re-asked when unreadable) and the better one
continues the conversation (a tie is broken by the conversation's seeded RNG).
Each role can be a different provider and model::

    prefkit hello-chat --user-model openai:gpt-4o-mini --assistant-model hf:smollm2 \\
        --judge-model anthropic:claude-sonnet-4-5 --turns 3

The layers follow prefkit's rule: a config dataclass (the flags) -> ``run_chat``
(usable from Python) -> a :class:`ChatResult` -> ``print_chat``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import prefkit

ROLES = [
    prefkit.RoleDecl("user", help="plays the person with the persona", default="mock:user-sim"),
    prefkit.RoleDecl("assistant", help="answers; two candidates per turn", default="mock:assistant"),
    prefkit.RoleDecl("judge", help="scores each candidate 1-5", default="mock:judge"),
]
SCORE = prefkit.IntRange(1, 5, reask="Reply with a single number from 1 to 5 and nothing else.")


@dataclass
class ChatConfig:
    """What ``hello-chat`` does (every field is a flag)."""

    turns: int = prefkit.opt(3, help="Turns per conversation.")
    limit: int | None = prefkit.opt(None, help="Conversations to run (default: one per pair in hello-prefs).")
    candidates: int = prefkit.opt(2, help="Assistant candidates per turn; the judge picks the one that continues.")
    seed: int = prefkit.opt(0, help="Seed of the tie-breaks (the same seed gives the same conversations).")


@dataclass
class ChatResult:
    conversations: list[dict[str, Any]]
    summary: dict[str, Any]
    run_path: str | None = None


def _as_user_view(history: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The transcript from the simulated user's side: its own questions are 'assistant' turns."""
    flip = {"user": "assistant", "assistant": "user"}
    return [{"role": flip[m["role"]], "content": m["content"]} for t in history for m in t["messages"]]


async def step(turn: prefkit.Turn) -> dict[str, Any]:
    """One turn: the user asks, the assistant proposes candidates, the judge scores them, the best continues."""
    persona, topic, n = turn.data["persona"], turn.data["topic"], turn.data["candidates"]
    transcript = [m for t in turn.history for m in t["messages"]]
    question = await turn.ask("user", [
        {"role": "system", "content": f"{persona} You want help with: {topic} Ask one short question or follow-up."},
        *_as_user_view(turn.history),
        {"role": "user", "content": "Your next message to the assistant:"}])
    answers = await turn.ask("assistant", [*transcript, {"role": "user", "content": question.text}], n=n)

    def judge(k: int, text: str):
        return turn.ask_structured("judge", [
            {"role": "system", "content": "You rate how well an answer suits this user: " + persona},
            {"role": "user", "content": f"Question: {question.text}\nAnswer: {text}\n"
                                        "Score it from 1 (poor) to 5 (excellent). Reply with the number only."}],
            SCORE, name=f"judge{k}")

    scores = await asyncio.gather(*(judge(k, t) for k, t in enumerate(answers.texts)))
    readable = [(s.value, k) for k, s in enumerate(scores) if s.ok]
    if not readable:
        raise prefkit.Reject("the judge's scores were unreadable for every candidate: " + scores[0].error)
    top = max(v for v, _ in readable)
    best = turn.rng.choice([k for v, k in readable if v == top])
    return {"messages": [{"role": "user", "content": question.text},
                         {"role": "assistant", "content": answers.texts[best]}],
            "scores": [s.value for s in scores], "chosen": best}


def run_chat(config: ChatConfig, roles: prefkit.Roles, run: prefkit.Run | None = None, *,
             progress: bool = True) -> ChatResult:
    """Run the conversations (into ``run`` if given: resumable turn by turn)."""
    if config.turns < 1 or config.candidates < 1:
        raise prefkit.UsageError("--turns and --candidates must be at least 1")
    records = prefkit.load_records("hello-prefs", limit=config.limit)
    dialogues = [prefkit.Dialogue(r.row_id, max_turns=config.turns,
                                  data={"persona": r.chosen_persona or "The user is curious.", "topic": r.prompt_text,
                                        "candidates": config.candidates})
                 for r in records]
    result = prefkit.run_dialogues(dialogues, step, roles=roles, run=run, seed=config.seed, progress=progress,
                                   description="hello-chat", quiet=False)
    convs = [{"id": c.id, "status": c.status, "error": c.error, "turns": c.turns} for c in result.conversations]
    return ChatResult(convs, result.summary, str(run.path) if run is not None else None)


def print_chat(result: ChatResult, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps({"conversations": result.conversations, "summary": result.summary}, indent=2))
        return
    for c in result.conversations:
        print(f"== {c['id']} ({c['status']}{': ' + c['error'] if c['error'] else ''})")
        for i, t in enumerate(c["turns"]):
            print(f"  [{i}] user: {t['messages'][0]['content']}")
            print(f"      assistant: {t['messages'][1]['content']}   (scores {t['scores']}, kept #{t['chosen']})")


def register(app) -> None:
    """Add ``prefkit hello-chat`` to the CLI."""
    import typer

    @app.command("hello-chat")
    @prefkit.with_options(prefkit.RunOptions, "out")
    @prefkit.with_options(ChatConfig, "config")
    @prefkit.with_roles(ROLES, "roles", default_backend="mock")
    def hello_chat(json_: bool = typer.Option(False, "--json", help="Print JSON."), *, out: prefkit.RunOptions,
                   config: ChatConfig, roles: prefkit.Roles) -> None:
        """Simulated multi-turn chats with a model per role (user, assistant, judge): an example plugin command."""
        identity = {"config": vars(config), "roles": roles.identity()}
        if roles.engine.dry_run:  # nothing is sent or stored: the summary (calls, cost per role) is the output
            run_chat(config, roles)
            return
        with prefkit.Run.open("hello-chat", config=identity, identity=identity, output_dir=out.output_dir,
                              run_name=out.run_name, fresh=out.fresh) as run:
            print_chat(run_chat(config, roles, run), as_json=json_)
