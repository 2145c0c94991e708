"""Persona inference (PI): explain each preference with the user who would make it.

For every row, two requests: the *chosen-side* persona (a user who prefers the
chosen response over the rejected one) and the *rejected-side* persona (the
reverse). Strategies (``register_persona_strategies``) turn one such input into
chat messages; :func:`clean_persona` is the one post-processing step for all.
Everything a later step needs (inputs, raw text, persona, flags) is stored in
the run's ``results.jsonl``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import prefkit
from prefkit import UsageError

from . import templates
from .splits import INFERENCE_SPLITS, canonical_split

SIDES = ("chosen", "rejected")

# text after which a completion no longer belongs to the persona
STOP_TEXTS = ("---", "===", "Prompt:", "Chosen Response:", "Rejected Response:", "<|end_of_text|>",
              "<|eot_id|>", "<|im_end|>", "<|endoftext|>", "</s>")
# sent to the backend as stop sequences (a subset: providers cap their number)
REQUEST_STOPS = ["\n---", "\nPrompt:", "\n==="]

_LABEL = re.compile(r"^\s*(?:[-*#>\s]*)(?:\*\*)?\s*persona\s*(?:\*\*)?\s*:\s*(?:\*\*)?", re.I)
_PERSONA_START = re.compile(r"^(the|this|a|an)\s+user\b", re.I)


def request_stops(user_stops: Iterable[str] | None = None) -> list[str]:
    """The built-in request stops followed by the user's own (``--stop``), without repeats."""
    return list(dict.fromkeys([*REQUEST_STOPS, *(s for s in (user_stops or ()) if s)]))


def clean_persona(text: str | None, stops: Iterable[str] = STOP_TEXTS) -> tuple[str, list[str]]:
    """The one deterministic post-processing step: ``(persona, flags)``.

    Cut at the first stop text, keep the first non-empty line, drop a repeated
    ``Persona:`` label, markdown emphasis and enclosing quotes, normalise
    whitespace. Flags: ``empty`` (nothing left) and ``malformed`` (does not read
    as "The user ...").
    """
    text = text or ""
    cut = len(text)
    for s in stops:
        i = text.find(s)
        if i >= 0:
            cut = min(cut, i)
    text = text[:cut]
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line, count=1)
    line = " ".join(line.replace("**", "").split())
    while len(line) >= 2 and line[0] in "\"'“" and line[-1] in "\"'”":
        line = line[1:-1].strip()
    if line and line[0] in "\"'“" and line.count(line[0]) == 1:
        line = line[1:].strip()
    if not line:
        return "", ["empty"]
    flags = [] if _PERSONA_START.match(line) else ["malformed"]
    return line, flags


@dataclass
class PIInput:
    """One persona-inference query: a row seen from one side."""

    row_id: str
    side: str  # "chosen" (chosen preferred) or "rejected" (rejected preferred)
    prompt: str
    preferred: str
    dispreferred: str

    @property
    def key(self) -> str:
        return f"{self.row_id}:{self.side}"


@dataclass
class PromptContext:
    """What a strategy may use besides the input: the split, its description, demos, template."""

    split: str
    description: str
    template: str
    demos: list[str] = field(default_factory=list)


class PersonaStrategy:
    """Base class of a persona strategy. Register instances with ``register_persona_strategies``.

    Subclasses set ``name``, ``description``, ``template`` (a built-in template
    name or the template text itself) and ``uses_examples``; override
    :meth:`build_messages` or :meth:`clean` for more control.
    """

    name = "base"
    description = ""
    template = "abductive"
    uses_examples = True
    required_placeholders = ("prompt", "chosen", "rejected")

    def default_template(self) -> str:
        if "{{" in self.template:
            return self.template
        return templates.builtin_template(self.template)

    def context(self, split: str, *, prompt_file: str | None = None, examples_file: str | None = None) -> PromptContext:
        if prompt_file:
            template = templates.read_text(prompt_file, "prompt file")
            where = f"prompt file {prompt_file}"
        else:
            template = self.default_template()
            where = f"template of strategy {self.name!r}"
        templates.check_template(template, self.required_placeholders, where)
        demos: list[str] = []
        if self.uses_examples or examples_file:
            if "examples" in templates.placeholders(template):
                demos = templates.load_demos(split, examples_file)
        return PromptContext(split=split, description=templates.description(split), template=template, demos=demos)

    def render(self, item: PIInput, ctx: PromptContext) -> str:
        values = {"prompt": item.prompt.strip(), "chosen": item.preferred.strip(),
                  "rejected": item.dispreferred.strip(), "description": ctx.description,
                  "examples": "\n\n".join(ctx.demos), "split": ctx.split}
        return templates.render(ctx.template, **values).strip()

    def build_messages(self, item: PIInput, ctx: PromptContext) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.render(item, ctx)}]

    def clean(self, text: str | None, stops: Iterable[str] = ()) -> tuple[str, list[str]]:
        return clean_persona(text, (*STOP_TEXTS, *stops))


class AbductiveStrategy(PersonaStrategy):
    name = "abductive"
    description = "Instruction + split description + few-shot demonstrations (the paper's setting)"
    template = "abductive"
    uses_examples = True


class ZeroShotStrategy(PersonaStrategy):
    name = "zero-shot"
    description = "Instruction + split description, no demonstrations"
    template = "zero-shot"
    uses_examples = False


def get_strategy(name: str) -> PersonaStrategy:
    from prefkit import registry

    reg = registry("persona_strategies")
    if name not in reg:
        raise UsageError(f"unknown persona strategy {name!r} (known: {', '.join(sorted(reg.names())) or 'none'})")
    obj = reg.get(name)
    return obj() if isinstance(obj, type) else obj


def pi_inputs(records: Iterable[Any], sides: Iterable[str] = SIDES) -> list[PIInput]:
    """Both directions of every record (chosen side first), as :class:`PIInput` s."""
    sides = list(sides)
    bad = [s for s in sides if s not in SIDES]
    if bad or not sides:
        raise UsageError(f"unknown side {', '.join(bad) or '(none)'!s} (sides: chosen, rejected)")
    out = []
    for rec in records:
        prompt, chosen, rejected = rec.prompt_text, rec.chosen_text, rec.rejected_text
        for side in sides:
            pref, dis = (chosen, rejected) if side == "chosen" else (rejected, chosen)
            out.append(PIInput(str(rec.row_id), side, prompt, pref, dis))
    return out


def build_requests(items: list[PIInput], strategy: PersonaStrategy, ctx: PromptContext,
                   *, stop: list[str] | None = None, max_tokens: int | None = None) -> list[Any]:
    from prefkit import ChatRequest

    reqs = []
    for it in items:
        reqs.append(ChatRequest(key=it.key, messages=strategy.build_messages(it, ctx),
                                stop=request_stops(stop), max_tokens=max_tokens,
                                meta={"row_id": it.row_id, "side": it.side, "prompt": it.prompt,
                                      "preferred": it.preferred, "dispreferred": it.dispreferred}))
    return reqs


def persona_record(completion: Any, strategy: PersonaStrategy, *, split: str, dataset: str,
                   data_split: str | None, stops: Iterable[str] = ()) -> dict[str, Any]:
    """The results.jsonl record of one completion (``stops``: the user's extra stop texts, cut too)."""
    meta = dict(getattr(completion.request, "meta", None) or {})
    persona, flags = strategy.clean(completion.text, stops)
    if getattr(completion, "finish_reason", None) == "length":
        flags = [*flags, "truncated"]
    return {
        "row_id": meta.get("row_id"),
        "side": meta.get("side"),
        "split": split,
        "dataset": dataset,
        "data_split": data_split,
        "strategy": strategy.name,
        "prompt": meta.get("prompt"),
        "preferred": meta.get("preferred"),
        "dispreferred": meta.get("dispreferred"),
        "raw": completion.text,
        "persona": persona,
        "flags": flags,
        "finish_reason": getattr(completion, "finish_reason", None),
        "model": getattr(completion, "model", None),
    }


@dataclass
class InferConfig:
    """Settings of a persona-inference run (the same object drives the CLI and the Python API)."""

    split: str
    strategy: str = "abductive"
    prompt_file: str | None = None
    examples_file: str | None = None
    dataset: str | None = None  # default: persona-inference:<split>
    data_split: str | None = None  # the dataset's split (default: the source's default, "train")
    data_dir: str | None = None
    limit: int | None = None
    sides: tuple[str, ...] = SIDES
    skip_invalid: bool = False


DEFAULT_MAX_TOKENS = 200


def infer_personas(config: InferConfig, options: Any = None, *, output_dir: str | None = None,
                   run_name: str | None = None, fresh: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run persona inference; returns a summary (run directory, counts, flags). Resumes by default."""
    from prefkit import BackendOptions, run_requests
    from prefkit import load_records
    from prefkit import Run, slug

    options = options if options is not None else BackendOptions()
    try:
        split = canonical_split(config.split, INFERENCE_SPLITS)
    except UsageError:
        if config.dataset is None and config.prompt_file is None:
            raise
        split = config.split  # a user dataset with its own prompt file
    strategy = get_strategy(config.strategy)
    ctx = strategy.context(split, prompt_file=config.prompt_file, examples_file=config.examples_file)
    dataset = config.dataset or f"persona-inference:{split}"
    data_split = config.data_split or ("train" if config.dataset is None else None)
    records = load_records(dataset, split=data_split, data_dir=config.data_dir, limit=config.limit,
                           skip_invalid=config.skip_invalid)
    if not records:
        raise UsageError(f"{dataset} has no rows")
    items = pi_inputs(records, config.sides)
    max_tokens = None if getattr(options, "max_tokens", None) else DEFAULT_MAX_TOKENS
    user_stops = [s for s in (getattr(options, "stop", None) or []) if s]
    requests = build_requests(items, strategy, ctx, stop=user_stops, max_tokens=max_tokens)

    model_label = getattr(options, "model", None) or getattr(options, "backend", None) or "default"
    identity = {
        "dataset": dataset, "data_split": data_split, "split": split, "strategy": strategy.name,
        "prompt": templates.fingerprint(ctx.template, *ctx.demos),
        "llm": options.identity() if hasattr(options, "identity") else {},
    }
    run = Run.open("infer-personas", config={"infer": config, "llm": options}, identity=identity,
                   output_dir=output_dir, run_name=run_name, fresh=fresh,
                   name_hint=f"{slug(split)}-{strategy.name}-{slug(str(model_label).split('/')[-1])}")
    run.update_manifest(persona={"split": split, "dataset": dataset, "data_split": data_split,
                                 "strategy": strategy.name, "sides": list(config.sides)})

    personas = {(r.get("row_id"), r.get("side")): r.get("persona") for r in run.results()}  # for same_persona
    shown = demo_personas(ctx.demos)  # for copied_demo

    def on_result(completion):
        record = persona_record(completion, strategy, split=split, dataset=dataset, data_split=data_split,
                                stops=user_stops)
        other = personas.get((record["row_id"], "rejected" if record["side"] == "chosen" else "chosen"))
        if other and record["persona"] and same_persona(record["persona"], other):
            record["flags"] = [*record["flags"], "same_persona"]  # on the row's second persona (append-only store)
        if record["persona"] and any(same_persona(record["persona"], d) for d in shown):
            record["flags"] = [*record["flags"], "copied_demo"]  # the model repeated a demonstration's persona
        personas[(record["row_id"], record["side"])] = record["persona"]
        return record

    with run:  # the core's lifecycle: failed / interrupted recorded there
        engine = run_requests(requests, options, run=run, on_result=on_result,
                              description=f"inferring personas ({split})")
    summary = summarize_run(run, expected={it.key for it in items})
    summary["engine"] = engine if isinstance(engine, dict) else {}
    summary["run"] = str(run.path)
    if getattr(options, "dry_run", False):
        summary["dry_run"] = True
        run.finish(prefkit.RunStatus.DRY_RUN)
        return summary
    run.write_metrics({"personas": summary["personas"], "flags": summary["flags"],
                       "missing": summary["missing"]})
    run.expect({it.key for it in items})
    run.finish(personas=summary["personas"])  # done, or incomplete when personas are missing
    summary["run"] = str(run.path)
    return summary


def demo_personas(demos: Iterable[str]) -> list[str]:
    """The personas the demonstrations show (their ``Persona:`` lines)."""
    return [m.group(1).strip() for d in demos for m in re.finditer(r"(?m)^Persona:\s*(.+)$", d)]


def same_persona(a: str, b: str, threshold: float = 0.9) -> bool:
    """Whether two personas are identical or near-identical (case, punctuation and spacing ignored;
    difflib similarity at least ``threshold``): a row whose two sides got such personas explains nothing."""
    import difflib

    def norm(t: str) -> str:
        return " ".join(re.sub(r"[^\w\s]", " ", t.lower()).split())

    x, y = norm(a), norm(b)
    return x == y or difflib.SequenceMatcher(None, x, y, autojunk=False).ratio() >= threshold


def summarize_run(run: Any, expected: set[str] | None = None) -> dict[str, Any]:
    rows = [r for r in run.results() if r.get("side") in SIDES]
    if expected is not None:
        rows = [r for r in rows if r.get("key") in expected]
    flags: dict[str, int] = {}
    for r in rows:
        for f in r.get("flags") or []:
            flags[f] = flags.get(f, 0) + 1
    by_side = {s: sum(1 for r in rows if r["side"] == s) for s in SIDES}
    missing = (len(expected) - len(rows)) if expected is not None else 0
    return {"personas": len(rows), "by_side": by_side, "flags": flags, "missing": missing,
            "failures": len(run.failures())}
