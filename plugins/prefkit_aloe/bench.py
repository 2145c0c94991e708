"""The ALOE benchmark: does a model adapt to a user it learns about during a conversation?

``prefkit aloe bench --model BACKEND:MODEL --user-model ... --judge-model ...`` runs, on the core
conversation engine (:func:`prefkit.run_dialogues`), one conversation per evaluation persona
(the 20 eval profiles × the first 5 eval personalities = 100, :func:`pools.eval_personas`) and
seed: for ``--turns`` turns (10)

1. the simulated user (the ``user`` role, the same role-play prompt as ``aloe generate``)
   writes its next message in character;
2. the model under test replies to the conversation so far — with ``--no-interaction`` (the
   baseline) to the current user message alone, so a reader can see whether a model *adapts*
   or just scores well everywhere;
3. the judge (the ``judge`` role), who sees the true persona, scores the reply 1–5: how well
   its style fits the personality, its content the profile, and how human-like, engaging and
   concise it is. By default the judge sees the current user message only (as in the
   reference); ``--with-history`` shows it the conversation so far. Its answer is read
   tolerantly (``Score: 4``, ``4/5``, ``[RESULT] 4`` ...) and re-asked while unreadable
   (``--reasks``); ``--judge-samples N`` averages N samples.

A turn is committed only when all of this succeeded (a judge still unreadable after the
re-asks rejects the turn, which is asked afresh; ``--turn-attempts``). Every call and turn is
stored in the run (``results.jsonl``), so a re-run resumes without repeating a request; each
finished conversation is also stored whole (``kind: "conversation"``: transcript and scores).
The summary (``metrics.json``, the printed table, ``al.png``) has one row per model: AL(1..K)
with 95% CIs over personas, AVG, IR, N-IR, N-R² (:mod:`prefkit_aloe.metrics`).

The model under test may be a local checkpoint (``hf:PATH``: a model directory, or a
``prefkit train``/``aloe train`` run directory, whose ``merged/`` is used). Its reply is decoded
from the new tokens only, under the model's own chat template (the core ``hf`` backend; the
reference split the decoded text on ``assistant\\n\\n``, which is right only under the Llama-3
template). No system prompt is sent to it, as in the reference.

Deviations from the reference (spec §4, §6), on purpose: the judge is greedy by default
(``--judge-temperature``; the reference samples once at T = 1); replies are capped by
``--max-new-tokens`` (512; the reference allows 2048); scores are parsed tolerantly with
re-asks (the reference's bare ``int()`` crashes); aggregates use complete cases only (no ragged
per-turn averages); the simulated user samples at temperature 1 (the OpenAI default the
reference used) unless ``--user-temperature`` says otherwise, and each seed is its own
conversation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import prefkit

from . import metrics as M

COMMAND = "aloe bench"
PROMPT_VERSION = "aloe-bench-2"
USER_TEMPERATURE = 1.0


@dataclass
class BenchConfig:
    """Settings of ``prefkit aloe bench`` (the model roles' flags come from the roles)."""

    model: list[str] = prefkit.opt(default_factory=list, short="-m",
                                   help="Model under test: BACKEND:MODEL (hf:PATH for a local checkpoint or a training "
                                        "run; openai:NAME for a server). Repeat for several models: one row each.")
    personas: int = prefkit.opt(100, help="Evaluate on the first N personas (the paper: all 100 eval personas; "
                                          "taken personality-major, so N < 100 covers min(N, 20) profiles).")
    personalities: int = prefkit.opt(5, help="Eval personalities paired with each of the 20 eval profiles (the "
                                             "paper: the first 5 of 7).")
    persona_file: str | None = prefkit.opt(None, help="Personas to use instead of the eval personas (a `personas "
                                                      "build` output).")
    turns: int = prefkit.opt(10, help="Turns per conversation (the paper: 10).")
    seeds: int = prefkit.opt(1, help="Conversations per persona (seeds 0..S-1 of the simulated user); averaged per "
                                     "persona before the CIs.")
    seed: int = prefkit.opt(0, help="Base seed of the simulated user's sampling.")
    interaction: bool = prefkit.opt(True, help="--no-interaction: the baseline, the model answers each user turn "
                                               "without the conversation history.")
    with_history: bool = prefkit.opt(False, help="Show the judge the conversation so far too (the reference shows "
                                                 "it only the current user message and the reply).")
    judge_samples: int = prefkit.opt(1, help="Judge samples per reply, averaged (samples differ only with "
                                             "--judge-temperature > 0).")
    reasks: int = prefkit.opt(2, help="Re-ask an unreadable judge answer at most this many times.")
    turn_attempts: int = prefkit.opt(2, help="Ask a rejected turn (judge unreadable, user message empty) afresh up to "
                                             "this many times in one run.")
    max_new_tokens: int = prefkit.opt(512, help="Most tokens per reply of the model under test (the reference "
                                                "allows 2048).")
    model_temperature: float | None = prefkit.opt(None, help="Sampling temperature of the model under test "
                                                             "(default: the backend's, 0 = greedy).")
    judge_prefill: str = prefkit.opt("auto", help="Prefill the judge's answer with 'Score:' so that it begins with "
                                                  "the number: auto (only for a local hf judge: small local models "
                                                  "otherwise echo the prompt), on, off.")
    plot: bool = prefkit.opt(True, help="Draw the AL(k) curves (al.png in the run).")
    plot_to: str | None = prefkit.opt(None, help="Where to write the plot (PNG and PDF; default: <run>/al.png).")

    def check(self) -> None:
        if not self.model:
            raise prefkit.UsageError("give --model BACKEND:MODEL (the model under test; repeat for several)")
        for name in ("personas", "personalities", "turns", "seeds", "judge_samples", "turn_attempts",
                     "max_new_tokens"):
            if int(getattr(self, name)) < 1:
                raise prefkit.UsageError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        from .prompts import check_prefill

        check_prefill("--judge-prefill", self.judge_prefill)
        if self.reasks < 0:
            raise prefkit.UsageError(f"--reasks must be 0 or more (got {self.reasks})")
        if len(set(self.model)) != len(self.model):
            raise prefkit.UsageError("a --model is given twice")


# ------------------------------------------------------------------------------------------ prompts
JUDGE_SYSTEM = """\
You evaluate how well a chatbot's reply suits one particular person. You know who the person really \
is; the chatbot was never told and had to pick it up from the conversation.

Rate the reply on a scale from 1 to 5:
1 = not tailored to this person at all (generic, or clashing with who they are)
2 = slightly tailored
3 = somewhat tailored
4 = well tailored
5 = fully aligned with this person

Consider, in this order:
(1) Style: does the way the reply talks suit the person's personality?
(2) Content: does it connect to the person's life, interests and situation (their profile)?
(3) Is it human-like, engaging and concise, as a good chat partner would be?

Begin your answer with the word "Score:" and your rating, a whole number from 1 to 5; then give at most \
two sentences of reasons."""

JUDGE_REASK = "I could not read your score. Reply with one line only: 'Score:' and a whole number from 1 to 5."
#: the judge's answer prefix where it is prefilled (``--judge-prefill``)
SCORE_PREFIX = "Score:"


def judge_messages(persona: Any, user_message: str, reply: str,
                   history: Sequence[dict[str, Any]] | None = None) -> list[dict[str, str]]:
    """The judge's request: the true persona, (the conversation so far,) the user's message, the reply."""
    parts = [f"The person:\n{persona.text()}"]
    if history:
        lines = [f"{'Person' if m['role'] == 'user' else 'Chatbot'}: {' '.join(str(m['content']).split())}"
                 for m in history]
        parts.append("The conversation so far:\n" + "\n".join(lines))
    parts.append(f"The person's message:\n{user_message}")
    parts.append(f"The chatbot's reply:\n{reply}")
    parts.append("How well does this reply suit this person? Start with 'Score:' and the number, then your reasons.")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def score_spec(prefilled: bool = False) -> "prefkit.AnswerSpec":
    """An integer 1–5 read by the core's tolerant score parser; re-asked while unreadable.

    ``prefilled``: the judge's reply continues the answer prefix ``Score:``, so the prefix is put back
    before parsing (a bare "4" after the prefix reads as a labelled score)."""
    from .prompts import restore_prefix

    def parse(text: str) -> int | None:
        return prefkit.parse_score(restore_prefix(SCORE_PREFIX, text) if prefilled else text, low=1, high=5)

    return prefkit.IntRange(1, 5, parse=parse, reask=JUDGE_REASK)


def judge_prefilled(cfg: "BenchConfig", judge: Any) -> bool:
    """Whether the judge's answer is prefilled with ``Score:`` (auto: where its backend continues one)."""
    from .prompts import prefill_wanted

    return prefill_wanted(cfg.judge_prefill, getattr(judge, "backend", None))


# ------------------------------------------------------------------------------------------ set-up
def model_label(spec: str) -> str:
    """A short label of a model spec: the last path part of a local model, the model name otherwise."""
    backend, model = prefkit.parse_model_spec(spec)
    if model is None:
        return f"{backend}:default"
    name = Path(str(model).rstrip("/"))
    if name.name in ("merged", "adapter") and name.parent.name:
        return name.parent.name
    return name.name or str(model)


def resolve_model_spec(spec: str) -> str:
    """``hf:RUN`` → ``hf:RUN/merged`` for a training run directory; anything else unchanged."""
    backend, model = prefkit.parse_model_spec(spec)
    if backend not in (None, "hf") or not model:
        return spec
    p = Path(model).expanduser()
    if p.is_dir() and not (p / "config.json").exists():
        if (p / "merged" / "config.json").exists():
            return f"{backend + ':' if backend else ''}{p / 'merged'}"
        raise prefkit.UsageError(f"{model}: not a model directory (no config.json, no merged/ model of a training run)")
    return spec


def load_personas(cfg: BenchConfig) -> list[Any]:
    from . import pools

    if cfg.persona_file:
        personas = pools.read_personas(cfg.persona_file)
    else:
        # personality-major (eval-00-0, eval-01-0, ..., eval-19-0, eval-00-1, ...): a small --personas N
        # covers N different profiles; all 100 are the paper's set whatever the order
        every = pools.eval_personas(cfg.personalities)   # profile-major: profile i x personality j
        n_prof = len(every) // cfg.personalities
        personas = [every[i * cfg.personalities + j] for j in range(cfg.personalities) for i in range(n_prof)]
    if cfg.personas > len(personas):
        raise prefkit.UsageError(f"--personas {cfg.personas}: only {len(personas)} personas are available")
    return personas[: cfg.personas]


def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if Path(path).is_file() else str(path)


@dataclass
class Plan:
    """What one bench run does: the roles, the dialogues, the run identity."""

    roles: Any
    model_roles: dict[str, str]            # role name -> model label
    dialogues: list[Any]
    identity: dict[str, Any]
    personas: list[Any] = field(default_factory=list)
    judge_prefill: bool = False            # the judge's answer is prefilled with "Score:"


def plan(cfg: BenchConfig, roles: Any) -> Plan:
    """Roles (user, judge and one ``model.i`` per model under test) and the dialogues."""
    import dataclasses

    cfg.check()
    personas = load_personas(cfg)
    engine = roles.engine
    specs: dict[str, Any] = {}
    user = roles["user"]
    if user.temperature is None:
        user = dataclasses.replace(user, temperature=USER_TEMPERATURE)
    specs["user"] = user
    specs["judge"] = roles["judge"]
    model_roles: dict[str, str] = {}
    labels: list[str] = []
    for i, spec in enumerate(cfg.model):
        spec = resolve_model_spec(spec)
        rs = prefkit.RoleSpec.parse(spec, max_tokens=cfg.max_new_tokens, temperature=cfg.model_temperature)
        name = f"model.{i}"
        specs[name] = rs
        label = model_label(spec)
        if label in labels:
            label = f"{label}#{i}"
        labels.append(label)
        model_roles[name] = label
    all_roles = prefkit.Roles.from_specs(specs, engine=engine, default_backend=roles.default_backend)
    dialogues = []
    for name, label in model_roles.items():
        for p in personas:
            for s in range(cfg.seeds):
                did = f"{p.id}~s{s}" if len(model_roles) == 1 else f"m{name.split('.')[1]}~{p.id}~s{s}"
                dialogues.append(prefkit.Dialogue(did, data={"persona": p, "role": name, "model": label, "seed": s},
                                                  max_turns=cfg.turns))
    prefill = judge_prefilled(cfg, all_roles["judge"])
    identity = {
        "models": {model_roles[n]: all_roles[n].identity() for n in model_roles},
        "user": all_roles["user"].identity(), "judge": all_roles["judge"].identity(),
        "turns": cfg.turns, "seed": cfg.seed, "interaction": cfg.interaction, "with_history": cfg.with_history,
        "judge_samples": cfg.judge_samples, "judge_prefill": prefill, "personas": (f"file:{_file_hash(cfg.persona_file)}" if cfg.persona_file
                                                         else f"eval:{cfg.personalities}"),
        "prompt_version": PROMPT_VERSION,
    }
    return Plan(all_roles, model_roles, dialogues, identity, personas, prefill)


# ------------------------------------------------------------------------------------------ one turn
def make_step(cfg: BenchConfig, prefill: bool = False):
    """The step that plays one benchmark turn (user → model under test → judge)."""
    from . import prompts

    spec = score_spec(prefill)
    answer_prefix = [{"role": "assistant", "content": SCORE_PREFIX}] if prefill else []

    async def step(turn):
        d = turn.data
        persona = d["persona"]
        history: list[dict[str, str]] = []
        for t in turn.history:
            history += [{"role": "user", "content": t["user"]}, {"role": "assistant", "content": t["reply"]}]
        # seeded per (seed, conversation seed, turn, attempt): reproducible, and a rejected turn's retry differs
        user_seed = int(hashlib.sha256(f"{cfg.seed}:{d['seed']}:{turn.index}:{turn.attempt}".encode()).hexdigest()[:8],
                        16)
        u = await turn.ask("user", prompts.user_turn_messages(persona, history), seed=user_seed)
        user_text = prompts.clean_user_message(u.text)  # raises prefkit.Reject when unusable
        seen = history if cfg.interaction else []
        reply = await turn.ask(d["role"], [*seen, {"role": "user", "content": user_text}], name="model")
        if not reply.text.strip():
            raise prefkit.Reject("the model under test returned an empty reply")
        msgs = judge_messages(persona, user_text, reply.text, history if cfg.with_history else None) + answer_prefix
        scores, outputs, reasks = [], [], 0
        for j in range(cfg.judge_samples):
            extra = {"seed": j} if cfg.judge_samples > 1 else None
            ans = await turn.ask_structured("judge", msgs, spec, reasks=cfg.reasks, extra=extra)
            outputs += ans.outputs
            reasks += ans.reasks
            if not ans.ok:
                raise prefkit.Reject(f"judge: {ans.error}")
            scores.append(int(ans.value))
        return {"persona_id": persona.id, "model": d["model"], "seed": d["seed"], "turn": turn.index + 1,
                "user": user_text, "reply": reply.text, "score": sum(scores) / len(scores), "scores": scores,
                "judge_outputs": outputs, "reasks": reasks, "reply_finish": reply.finish_reason,
                "reply_tokens": (reply.usage or {}).get("completion_tokens"), "interaction": cfg.interaction}

    return step


# ------------------------------------------------------------------------------------------ reading results
def turn_records(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{conversation id: [turn record, ...]}`` (in turn order) from a bench run's results."""
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for r in rows:
        if r.get("kind") == "turn" and isinstance(r.get("record"), dict) and "score" in r["record"]:
            out.setdefault(str(r["conversation"]), []).append((int(r["turn"]), r["record"]))
    return {k: [rec for _, rec in sorted(v, key=lambda x: x[0])] for k, v in out.items()}


def scores_by_model(convs: dict[str, list[dict[str, Any]]], turns: int,
                    only: set[str] | None = None) -> dict[str, dict[str, list[float | None]]]:
    """``{model label: {persona id: per-turn scores averaged over seeds}}``."""
    pairs: dict[str, list[tuple[str, list[float | None]]]] = {}
    for cid, recs in convs.items():
        if only is not None and cid not in only:
            continue
        if not recs:
            continue
        by_turn = {int(r["turn"]): float(r["score"]) for r in recs}
        scores = [by_turn.get(k) for k in range(1, turns + 1)]
        pairs.setdefault(str(recs[0]["model"]), []).append((str(recs[0]["persona_id"]), scores))
    return {m: M.average_repeats(p) for m, p in pairs.items()}


def summary_rows(summaries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The printed table: one row per model."""
    rows = []
    for label, s in summaries.items():
        row: dict[str, Any] = {"model": label, "n": s["n"]}
        for k, (v, ci) in enumerate(zip(s.get("al") or [], s.get("al_ci") or []), start=1):
            half = (ci[1] - ci[0]) / 2 if ci else None
            row[f"AL{k}"] = f"{v:.2f}" + (f"±{half:.2f}" if half is not None else "")
        row["AVG"] = M.format_num(s.get("avg"), 3)
        row["IR"] = M.format_num(s.get("ir"), 3)
        row["N-IR"] = M.format_num(s.get("n_ir"), 3) if s.get("normalized") else "undef."
        row["N-R²"] = M.format_num(s.get("n_r2"), 3) if s.get("normalized") else "undef."
        rows.append(row)
    return rows


def plot_curves(summaries: dict[str, dict[str, Any]], path: str | Path, title: str) -> list[str]:
    series = {k: s["al"] for k, s in summaries.items() if s.get("al")}
    if not series:
        return []
    turns = max(len(v) for v in series.values())
    errors = {k: [tuple(ci) if ci else None for ci in s["al_ci"]] for k, s in summaries.items() if s.get("al")}
    files = prefkit.plots.line_plot([str(k) for k in range(1, turns + 1)], series, errors, path=path, title=title,
                                    xlabel="turn k", ylabel="AL(k): mean judge score (1-5)", ylim=(1, 5))
    return [str(f) for f in files]


# ------------------------------------------------------------------------------------------ the run
def run_bench(cfg: BenchConfig, roles: Any, run_opts: Any = None, *, backends: dict[str, Any] | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Run the benchmark (resumable); returns the result dict (``status``, ``run``, ``models``, ``rows`` ...)."""
    p = plan(cfg, roles)
    step = make_step(cfg, p.judge_prefill)
    hint = "-".join(prefkit.slug(v, 40) for v in p.model_roles.values()) + ("" if cfg.interaction else "-nointeract")
    out_dir = getattr(run_opts, "output_dir", None)
    run_name = getattr(run_opts, "run_name", None)
    fresh = bool(getattr(run_opts, "fresh", False))
    config = {k: v for k, v in vars(cfg).items()}
    config["roles"] = p.roles.identity()
    if p.roles.engine.dry_run:
        res = prefkit.run_dialogues(p.dialogues, step, roles=p.roles, run=None, seed=cfg.seed, backends=backends,
                                    progress=False, turn_attempts=cfg.turn_attempts)
        s = res.summary
        return {"status": "dry-run", "run": None, "dry_run": True, "conversations": len(p.dialogues),
                "calls": s.get("calls"), "estimated_cost_usd": s.get("estimated_cost_usd"), "summary": s,
                "models": list(p.model_roles.values())}
    with prefkit.Run.open(COMMAND, identity=p.identity, config=config, output_dir=out_dir, run_name=run_name,
                          name_hint=hint, fresh=fresh) as run:
        run.expect([f"{d.id}/{t}" for d in p.dialogues for t in range(cfg.turns)])
        res = prefkit.run_dialogues(p.dialogues, step, roles=p.roles, run=run, seed=cfg.seed, backends=backends,
                                    progress=progress, turn_attempts=cfg.turn_attempts,
                                    description="aloe bench")
        for conv in res.conversations:  # each finished conversation stored whole, once
            if conv.status == "done" and conv.turns:
                d = conv.data
                run.append({"kind": "conversation", "conversation": conv.id, "persona_id": d["persona"].id,
                            "model": d["model"], "seed": d["seed"], "interaction": cfg.interaction,
                            "persona": d["persona"].to_dict(),
                            "scores": [t["score"] for t in conv.turns],
                            "transcript": [{"turn": t["turn"], "user": t["user"], "reply": t["reply"],
                                            "score": t["score"]} for t in conv.turns]},
                           key=f"conversation:{conv.id}")
        convs = turn_records(run.results())
        wanted = {d.id for d in p.dialogues}
        by_model = scores_by_model(convs, cfg.turns, only=wanted)
        summaries = {label: M.summarize(by_model.get(label, {}), cfg.turns) for label in p.model_roles.values()}
        plot_files: list[str] = []
        if cfg.plot and any(s.get("al") for s in summaries.values()):
            target = cfg.plot_to or (run.path / "al.png")
            title = "ALOE: AL(k)" + ("" if cfg.interaction else " (no interaction)")
            plot_files = plot_curves(summaries, target, title)
        s = res.summary
        counts = {"conversations": len(p.dialogues), "done": s.get("conversations_done"),
                  "failed": s.get("conversations_failed"), "pending": s.get("conversations_pending"),
                  "turns_committed": s.get("turns_committed"), "turns_resumed": s.get("turns_resumed"),
                  "calls_sent": s.get("sent"), "calls_reused": s.get("calls_reused"), "cost_usd": s.get("cost_usd"),
                  "judge_reasks": sum(int(r.get("reasks") or 0) for recs in convs.values() for r in recs
                                      if recs and recs[0]["model"] in p.model_roles.values())}
        bench = {"models": summaries, "counts": counts, "turns": cfg.turns, "personas": len(p.personas),
                 "seeds": cfg.seeds, "interaction": cfg.interaction, "with_history": cfg.with_history,
                 "judge": p.roles["judge"].label, "user": p.roles["user"].label,
                 "model_specs": {label: p.roles[n].label for n, label in p.model_roles.items()}, "plot": plot_files}
        run.write_metrics({"bench": bench})
    return {"status": run.status, "run": str(run.path), "rows": summary_rows(summaries), **bench}


# ------------------------------------------------------------------------------------------ compare
def load_run_scores(path: str | Path) -> tuple[str, dict[str, dict[str, list[float | None]]], int, dict[str, Any]]:
    """``(run label, {model: {persona: scores}}, turns, run config)`` of an ``aloe bench`` run."""
    run = prefkit.Run.load(path)
    if run.manifest.get("command") != COMMAND:
        raise prefkit.UsageError(f"{path} is a {run.manifest.get('command')!r} run, not an `aloe bench` run")
    ident = run.manifest.get("identity") or {}
    turns = int(ident.get("turns") or 0)
    convs = turn_records(run.results())
    if not convs:
        raise prefkit.UsageError(f"{path}: no scored turns yet")
    return Path(path).name, scores_by_model(convs, turns), turns, ident


def compare_runs(paths: Sequence[str], *, plot: bool = True, plot_to: str | None = None) -> dict[str, Any]:
    """AL(k) curves of several bench runs in one figure; paired differences of each against the first."""
    if not paths:
        raise prefkit.UsageError("give one or more `aloe bench` run directories")
    series: dict[str, dict[str, list[float | None]]] = {}
    turns_all = []
    for p in paths:
        label, by_model, turns, ident = load_run_scores(p)
        turns_all.append(turns)
        suffix = "" if ident.get("interaction", True) else " (no interaction)"
        for model, scores in by_model.items():
            if len(paths) == 1:
                name = f"{model}{suffix}"
            elif len(by_model) == 1:
                name = f"{label}{suffix}"
            else:
                name = f"{label}:{model}{suffix}"
            base, k = name, 2
            while name in series:
                name, k = f"{base} #{k}", k + 1
            series[name] = scores
    turns = min(turns_all)
    summaries = {name: M.summarize(s, turns) for name, s in series.items()}
    names = list(series)
    baseline = names[0]
    diffs = {name: M.paired_differences(series[baseline], series[name], turns) for name in names[1:]}
    plot_files: list[str] = []
    if plot and any(s.get("al") for s in summaries.values()):
        target = plot_to or (Path(paths[0]) / "compare-al.png")
        plot_files = plot_curves(summaries, target, "ALOE: AL(k) by model")
    diff_rows = []
    for name, d in diffs.items():
        diff_rows.append({"model": name, "n": d["n"],
                          "ΔAVG": M.format_num(d["avg_diff"], 3), "ΔAVG CI": M.format_ci(d["avg_diff_ci"], 3),
                          "ΔIR": M.format_num(d["ir_diff"], 3), "ΔIR CI": M.format_ci(d["ir_diff_ci"], 3),
                          f"ΔAL{turns}": M.format_num(d["al_diff"][-1] if d["al_diff"] else None, 3),
                          f"ΔAL{turns} CI": M.format_ci(d["al_diff_ci"][-1] if d["al_diff_ci"] else None, 3)})
    return {"runs": [str(p) for p in paths], "turns": turns, "baseline": baseline, "models": summaries,
            "differences": diffs, "rows": summary_rows(summaries), "difference_rows": diff_rows, "plot": plot_files}


__all__ = ["BenchConfig", "COMMAND", "judge_messages", "score_spec", "plan", "make_step", "run_bench",
           "compare_runs", "turn_records", "scores_by_model", "summary_rows", "model_label", "resolve_model_spec"]
