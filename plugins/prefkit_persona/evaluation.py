"""Persona evaluation: persona accuracy and persona preferences, judged in both orders.

**Accuracy** (``prefkit persona accuracy``): a judge reads one persona, the prompt and the
two responses, and says which response that user would choose. A persona is accurate when
the judge picks the response it was inferred for. Two protocols:

* ``fewshot`` (default, the paper's structure): an instruction with the split's description,
  five demonstrations of the split (built from ``prompts/demos/<split>.txt``: the
  demonstration's persona, prompt and its two responses in alternating order, and the right
  response number), then the query; the judge answers with the response number (1 or 2).
  Template ``prompts/accuracy.txt`` (``--prompt-file``), demonstrations ``--examples-file``.
* ``rubric`` (prefkit's earlier protocol): zero-shot, through the core pairwise judge with the
  rubric ``persona-choice`` (or ``--rubric``).

Each persona is judged in both orders. The headline is the **per-item mean accuracy** (each
persona scores the mean of its two orders) with its standard error; per order and "both
orders agree" (strict) are reported as extras.

**Preferences** (``prefkit persona prefs``): the chosen-side and the rejected-side persona of
the same prompt are compared, in both orders (disagreement = tie). Two protocols:

* ``better`` (default, the paper's): the judge sees only the two personas and says which is
  better (``prompts/prefs.txt``, answer 1 or 2);
* ``typicality`` (prefkit's variant): the core pairwise judge with the rubric
  ``persona-typicality`` and the prompt shown: which persona describes the more typical user?

Judgments are stored in a run directory per persona run, so an interrupted evaluation
resumes; metrics are computed from those records.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from prefkit import UsageError

from . import templates
from .inference import SIDES
from .runs import PersonaRun, load_persona_run

ACCURACY_RUBRIC = "persona-choice"
PREFS_RUBRIC = "persona-typicality"
ACCURACY_PROTOCOLS = ("fewshot", "rubric")
PREFS_PROTOCOLS = ("better", "typicality")
ACCURACY_TEMPLATE = "accuracy"
PREFS_TEMPLATE = "prefs"
CHOICE_MAX_TOKENS = 16  # an answer is one number; a little room for "Response 2"
# which original label ("A" = chosen response / chosen-side persona) each persona side should win with
TARGET = {"chosen": "A", "rejected": "B"}
ORDER_NAMES = {"ab": "chosen shown first", "ba": "rejected shown first"}
_SWAP = {"A": "B", "B": "A", None: None}
_DEMO_FIELDS = re.compile(r"^\s*Prompt:\s*(?P<prompt>.*?)\n---\nChosen Response:\s*(?P<chosen>.*?)\n---\n"
                          r"Rejected Response:\s*(?P<rejected>.*?)\n---\nPersona:\s*(?P<persona>.*?)\s*$", re.S)
_ANSWER_LEAD = re.compile(r"^[\s*#>\[(]*(?:answer|response|persona|option)?\s*(?:number|no\.?|#)?\s*[:=]?\s*"
                          r"(?:response|persona)?\s*([12])(?=[ \t]*(?:$|\n|[.,:;)!*\]]\s*(?:$|\n|[^\d])))", re.I)
_ANSWER_ANY = re.compile(r"(?<![\d.,])([12])(?!\d|[.,]\d)")


def plugin_rubrics() -> list[Any]:
    from prefkit import Rubric

    return [Rubric.from_file(templates.PROMPTS_DIR / f"rubric_{name}.yaml")
            for name in ("persona_choice", "persona_typicality", "tailoring_personalization")]


from prefkit import mean_se as _mean_se, proportion_se as _se  # noqa: E402  (defined once, in the core)


def _status(options: Any, failed: int) -> str:
    if getattr(options, "dry_run", False):
        return "dry-run"
    return "done" if not failed else "incomplete"


def _check(value: str, known: tuple[str, ...], what: str) -> str:
    if value not in known:
        raise UsageError(f"unknown {what} {value!r} (choose from: {', '.join(known)})")
    return value


def _judge_slug(options: Any) -> str:
    from prefkit import slug

    model = getattr(options, "model", None) or getattr(options, "backend", None) or "default"
    return slug(str(model).split("/")[-1])


def _out_dir(output_dir: str | None, prun: PersonaRun, many: bool) -> str | None:
    if output_dir is None:
        return None
    return str(Path(output_dir) / prun.name) if many else output_dir


def _open_run(command: str, prun: PersonaRun, config: dict[str, Any], identity: dict[str, Any], options: Any, *,
              output_dir: str | None, run_name: str | None, fresh: bool) -> Any:
    from prefkit import Run

    ident = {"personas": str(prun.path.resolve()), "judge": options.identity() if hasattr(options, "identity") else {},
             **identity}
    return Run.open(command, config={"personas": str(prun.path), "llm": options, **config}, identity=ident,
                    output_dir=output_dir, run_name=run_name, fresh=fresh,
                    name_hint=f"{prun.name}-{_judge_slug(options)}")


def _judge_run(command: str, prun: PersonaRun, items: list[dict[str, Any]], rubric: Any, options: Any, judge: Any,
               *, output_dir: str | None, run_name: str | None, fresh: bool) -> tuple[Any, list[dict[str, Any]]]:
    """The rubric protocols: the core pairwise judge (both orders) into a run."""
    from prefkit import judge_pairwise

    run = _open_run(command, prun, {"rubric": rubric.name, "judge": judge},
                    {"protocol": "rubric", "rubric": rubric.fingerprint(),
                     "judge_options": judge.identity() if hasattr(judge, "identity") else {}},
                    options, output_dir=output_dir, run_name=run_name, fresh=fresh)
    with run:  # the core's lifecycle: failed / interrupted recorded there
        verdicts = judge_pairwise(items, rubric, options, run=run, judge=judge)
    return run, verdicts


def _setup(runs: Sequence[str | Path], options: Any, judge: Any, rubric: Any, default_rubric: str):
    from prefkit import BackendOptions
    from prefkit import JudgeOptions, get_rubric

    if not runs:
        raise UsageError("give at least one persona-inference run directory")
    options = options if options is not None else BackendOptions()
    judge = judge if judge is not None else JudgeOptions()
    rubric = get_rubric(rubric or default_rubric)
    return [load_persona_run(r) for r in runs], options, judge, rubric


# ---------------------------------------------------------------------------------------------- choice judge
def parse_choice(text: str | None) -> int | None:
    """The number (1 or 2) a judge answered with; None when the answer names neither or both.

    ``"2"``, ``"Response 1."``, ``"**Answer:** 2"`` (a number that ends the first line or sentence)
    → the number; otherwise the only one of 1 and 2 that appears on its own in the text
    (``"1 or 2"`` → None).
    """
    t = (text or "").strip()
    if not t:
        return None
    m = _ANSWER_LEAD.match(t)
    if m:
        return int(m.group(1))
    found = set(_ANSWER_ANY.findall(t))
    return int(found.pop()) if len(found) == 1 else None


def demo_fields(block: str, where: str = "demonstration") -> dict[str, str]:
    """One persona-inference demonstration block as ``{prompt, chosen, rejected, persona}``."""
    m = _DEMO_FIELDS.match(block.strip())
    if not m:
        raise UsageError(f"{where} is not in the Prompt: / --- / Chosen Response: / --- / Rejected Response: / --- / "
                         "Persona: layout")
    return {k: " ".join(v.split()) if k == "persona" else v.strip() for k, v in m.groupdict().items()}


def accuracy_demos(blocks: Sequence[str]) -> str:
    """Few-shot accuracy demonstrations from persona-inference ones: the persona's own response is
    shown first in odd-numbered demonstrations and second in even-numbered ones, so the answers alternate."""
    out = []
    for i, block in enumerate(blocks):
        d = demo_fields(block, f"demonstration {i + 1}")
        first, second, answer = ((d["chosen"], d["rejected"], 1) if i % 2 == 0 else (d["rejected"], d["chosen"], 2))
        out.append(f"Persona: {d['persona']}\nPrompt: {d['prompt']}\n---\nResponse 1: {first}\n---\n"
                   f"Response 2: {second}\n---\nAnswer: {answer}")
    return "\n\n".join(out)


def _template(prompt_file: str | None, builtin: str, required: tuple[str, ...]) -> str:
    text = templates.read_text(prompt_file, "prompt file") if prompt_file else templates.builtin_template(builtin)
    templates.check_template(text, required, f"prompt file {prompt_file}" if prompt_file else f"template {builtin!r}")
    return text


def choice_requests(items: list[dict[str, Any]], template: str, values: dict[str, str], slots: tuple[str, str],
                    max_tokens: int | None) -> list[Any]:
    """Two requests per item: ``ab`` shows the item's A first (as number 1), ``ba`` shows B first."""
    from prefkit import ChatRequest

    reqs = []
    for it in items:
        for order, (one, two) in (("ab", ("a", "b")), ("ba", ("b", "a"))):
            text = templates.render(template, **values, **it.get("values", {}),
                                    **{slots[0]: it[one].strip(), slots[1]: it[two].strip()}).strip()
            reqs.append(ChatRequest(key=f"{it['key']}/{order}", messages=[{"role": "user", "content": text}],
                                    max_tokens=max_tokens,
                                    meta={"item": it["key"], "order": order, **(it.get("meta") or {})}))
    return reqs


def _choice_record(completion: Any) -> dict[str, Any]:
    meta = dict(getattr(completion.request, "meta", None) or {})
    n = parse_choice(completion.text)
    label = None if n is None else ("A" if n == 1 else "B")
    if meta.get("order") == "ba":
        label = _SWAP[label]
    return {"item": meta.get("item"), "order": meta.get("order"), "answer": n, "verdict": label,
            "raw": completion.text, "model": getattr(completion, "model", None),
            **{k: v for k, v in meta.items() if k not in ("item", "order")}}


def choice_verdicts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per item, the two orders' verdicts in original labels (``verdict_ab``/``verdict_ba``) and the
    combined ``winner`` (agreeing orders: that label; disagreeing: tie; an unreadable order: failed)."""
    by_item: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.get("item") is None:
            continue
        d = by_item.setdefault(str(r["item"]), {"key": str(r["item"]),
                                                "meta": {k: r.get(k) for k in ("row_id", "side") if k in r}})
        d[f"verdict_{r['order']}"] = r.get("verdict")
        d[f"raw_{r['order']}"] = r.get("raw")
    out = []
    for d in by_item.values():
        if "verdict_ab" not in d or "verdict_ba" not in d:
            continue  # one order still missing (failed request): retried on resume
        ab, ba = d["verdict_ab"], d["verdict_ba"]
        d["winner"] = "failed" if ab is None or ba is None else (ab if ab == ba else "tie")
        d["consistent"] = None if d["winner"] == "failed" else ab == ba
        out.append(d)
    return out


def _choice_run(command: str, prun: PersonaRun, items: list[dict[str, Any]], options: Any, *, protocol: str,
                template: str, values: dict[str, str], slots: tuple[str, str], output_dir: str | None,
                run_name: str | None, fresh: bool, description: str) -> Any:
    from prefkit import run_requests

    max_tokens = None if getattr(options, "max_tokens", None) else CHOICE_MAX_TOKENS
    reqs = choice_requests(items, template, values, slots, max_tokens)
    run = _open_run(command, prun, {"protocol": protocol},
                    {"protocol": protocol, "prompt": templates.fingerprint(template, *values.values())},
                    options, output_dir=output_dir, run_name=run_name, fresh=fresh)
    with run:  # the core's lifecycle: failed / interrupted recorded there
        run_requests(reqs, options, run=run, on_result=_choice_record, description=description)
    return run


# ---------------------------------------------------------------------------------------------- accuracy
def accuracy_items(prun: PersonaRun) -> list[dict[str, Any]]:
    """One pairwise item per usable persona: A = the chosen response, B = the rejected one."""
    items = []
    for r in prun.usable():
        chosen = r["preferred"] if r["side"] == "chosen" else r["dispreferred"]
        rejected = r["dispreferred"] if r["side"] == "chosen" else r["preferred"]
        items.append({"key": f"{r['row_id']}:{r['side']}", "instruction": r["prompt"], "response_a": chosen,
                      "response_b": rejected, "persona": r["persona"],
                      "meta": {"row_id": str(r["row_id"]), "side": r["side"]}})
    return items


def accuracy_metrics(verdicts: list[dict[str, Any]], empty: dict[str, int] | None = None) -> dict[str, Any]:
    """Accuracy per side. Headline ``mean``: per-item mean over the two orders, with its standard error.

    Extras: ``order_ab``/``order_ba`` (one order each) and ``both_orders`` (both orders must pick
    the persona's response). A verdict whose order could not be read counts as not accurate for
    that order (and is counted under ``unparsed``); backend errors are left out (retried on resume).
    """
    vs = [v for v in verdicts if v.get("winner") not in (None, "error")]
    out: dict[str, Any] = {"headline": "mean"}
    for side in (*SIDES, "all"):
        sv = [v for v in vs if side == "all" or _side(v) == side]
        res: dict[str, Any] = {}
        scores, both = [], []
        per_order: dict[str, list[bool]] = {"ab": [], "ba": []}
        for v in sv:
            target = TARGET[_side(v)]
            ok = {o: v.get(f"verdict_{o}") == target for o in ("ab", "ba")}
            for o in ("ab", "ba"):
                per_order[o].append(ok[o])
            scores.append((ok["ab"] + ok["ba"]) / 2)
            both.append(ok["ab"] and ok["ba"])
        for o, vals in per_order.items():
            p = sum(vals) / len(vals) if vals else float("nan")
            res[f"order_{o}"] = {"accuracy": p, "se": _se(p, len(vals)), "n": len(vals), "label": ORDER_NAMES[o]}
        m, mse = _mean_se(scores)
        b = sum(both) / len(both) if both else float("nan")
        res["mean"] = {"accuracy": m, "se": mse, "n": len(scores)}
        res["both_orders"] = {"accuracy": b, "se": _se(b, len(both)), "n": len(both)}
        res["unparsed"] = sum(1 for v in sv if v.get("verdict_ab") is None or v.get("verdict_ba") is None)
        if empty is not None:
            res["empty_personas"] = empty.get(side, 0) if side != "all" else sum(empty.values())
        out[side] = res
    return out


def _side(v: dict[str, Any]) -> str:
    return (v.get("meta") or {}).get("side") or str(v["key"]).rsplit(":", 1)[-1]


def accuracy_prompt(split: str | None, *, prompt_file: str | None = None,
                    examples_file: str | None = None) -> tuple[str, dict[str, str]]:
    """The few-shot accuracy template and its fixed values (split description, demonstrations)."""
    template = _template(prompt_file, ACCURACY_TEMPLATE, ("persona", "prompt", "response_1", "response_2"))
    values = {"description": templates.description(split or ""), "examples": "", "split": split or ""}
    if "examples" in templates.placeholders(template):
        values["examples"] = accuracy_demos(templates.load_demos(split or "", examples_file))
    return template, values


def persona_accuracy(runs: Sequence[str | Path], options: Any = None, judge: Any = None, *, protocol: str = "fewshot",
                     rubric: str | None = None, prompt_file: str | None = None, examples_file: str | None = None,
                     output_dir: str | None = None, run_name: str | None = None, fresh: bool = False,
                     plot: str | Path | None = None, plot_metric: str = "mean",
                     make_plot: bool = True) -> dict[str, Any]:
    """Judge the personas of one or more PI runs; returns metrics per run (and the plot files)."""
    _check(protocol, ACCURACY_PROTOCOLS, "accuracy protocol")
    if plot_metric not in ("both_orders", "mean"):
        raise UsageError(f"unknown --plot-metric {plot_metric!r} (both_orders, mean)")
    if protocol == "fewshot" and rubric:
        raise UsageError("--rubric applies to --protocol rubric; the fewshot protocol uses --prompt-file/--examples-file")
    pruns, options, judge, rub = _setup(runs, options, judge, rubric, ACCURACY_RUBRIC)
    results = []
    for prun in pruns:
        empty = {s: sum(1 for r in prun.rows if r["side"] == s and not (r.get("persona") or "").strip())
                 for s in SIDES}
        items = accuracy_items(prun)
        out_dir = _out_dir(output_dir, prun, len(pruns) > 1)
        if protocol == "fewshot":
            template, values = accuracy_prompt(prun.split, prompt_file=prompt_file, examples_file=examples_file)
            for it in items:
                it.update({"a": it["response_a"], "b": it["response_b"],
                           "values": {"persona": it["persona"], "prompt": it["instruction"].strip()}})
            run = _choice_run("persona-accuracy", prun, items, options, protocol=protocol, template=template,
                              values=values, slots=("response_1", "response_2"), output_dir=out_dir,
                              run_name=run_name, fresh=fresh, description=f"persona accuracy ({prun.name})")
            verdicts = choice_verdicts(run.results())
        else:
            run, _ = _judge_run("persona-accuracy", prun, items, rub, options, judge, output_dir=out_dir,
                                run_name=run_name, fresh=fresh)
            verdicts = run.results()
        metrics = accuracy_metrics(verdicts, empty)
        run.write_metrics({"accuracy": metrics, "protocol": protocol, "personas": str(prun.path)})
        failed = len(run.failures())
        run.finish(_status(options, failed))
        results.append({"personas": str(prun.path), "label": prun.label, "split": prun.split, "protocol": protocol,
                        "judge_run": str(run.path), "accuracy": metrics, "failures": failed})
    out: dict[str, Any] = {"runs": results, "protocol": protocol, "metric_plotted": plot_metric}
    if make_plot:
        target = Path(plot) if plot else (Path(results[0]["judge_run"]) / "accuracy" if len(results) == 1
                                          else Path(results[0]["judge_run"]).parent / "accuracy-compare")
        out["plot"] = [str(p) for p in accuracy_plot(results, target, plot_metric)]
    return out


def accuracy_plot(results: list[dict[str, Any]], path: str | Path, metric: str = "mean") -> list[Path]:
    """Grouped bars: one group per run, chosen vs rejected personas, s.e. bars, dashed chance line."""
    from prefkit import plots

    groups = _unique_labels([r["label"] for r in results])
    series = {f"{s} personas": [r["accuracy"][s][metric]["accuracy"] for r in results] for s in SIDES}
    errors = {f"{s} personas": [r["accuracy"][s][metric]["se"] for r in results] for s in SIDES}
    chance = 0.25 if metric == "both_orders" else 0.5
    what = "both orders agree" if metric == "both_orders" else "mean of both orders"
    return plots.grouped_bars(groups, series, errors, path=path, title=f"Persona accuracy ({what})",
                              ylabel="accuracy", reference=chance, reference_label=f"chance ({chance:g})",
                              ylim=(0, 1.05), annotate=True)


def _unique_labels(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab} #{seen[lab]}")
    return out


# ---------------------------------------------------------------------------------------------- prefs
def prefs_items(prun: PersonaRun, *, with_prompt: bool = True) -> list[dict[str, Any]]:
    """One pairwise item per row with both personas: A = chosen-side persona, B = rejected-side persona."""
    items = []
    for row_id, sides in prun.pairs().items():
        if set(sides) != set(SIDES):
            continue
        items.append({"key": row_id, "instruction": sides["chosen"]["prompt"] if with_prompt else "",
                      "response_a": sides["chosen"]["persona"], "response_b": sides["rejected"]["persona"],
                      "a": sides["chosen"]["persona"], "b": sides["rejected"]["persona"],
                      "meta": {"row_id": row_id}})
    return items


def prefs_metrics(verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Proportions chosen / tie / rejected; inconsistent orders are ties, unreadable verdicts are left out."""
    vs = [v for v in verdicts if v.get("winner") not in (None, "error")]
    counts = {"chosen": 0, "tie": 0, "rejected": 0}
    failed = 0
    for v in vs:
        w = v.get("winner")
        if w == "A":
            counts["chosen"] += 1
        elif w == "B":
            counts["rejected"] += 1
        elif w == "tie":
            counts["tie"] += 1
        else:
            failed += 1
    n = sum(counts.values())
    props = {k: (c / n if n else float("nan")) for k, c in counts.items()}
    decisive = counts["chosen"] + counts["rejected"]
    wr = counts["chosen"] / decisive if decisive else float("nan")
    half = (counts["chosen"] + counts["tie"] / 2) / n if n else float("nan")
    return {"n": n, "counts": counts, "proportions": props, "se": {k: _se(p, n) for k, p in props.items()},
            "chosen_win_rate": {"ties_excluded": wr, "ties_excluded_se": _se(wr, decisive),
                                "ties_half": half, "n_decisive": decisive},
            "unparsed": failed}


def persona_prefs(runs: Sequence[str | Path], options: Any = None, judge: Any = None, *, protocol: str = "better",
                  rubric: str | None = None, prompt_file: str | None = None, output_dir: str | None = None,
                  run_name: str | None = None, fresh: bool = False, plot: str | Path | None = None,
                  make_plot: bool = True) -> dict[str, Any]:
    _check(protocol, PREFS_PROTOCOLS, "prefs protocol")
    if protocol == "better" and rubric:
        raise UsageError("--rubric applies to --protocol typicality; the better protocol uses --prompt-file")
    pruns, options, judge, rub = _setup(runs, options, judge, rubric, PREFS_RUBRIC)
    template = _template(prompt_file, PREFS_TEMPLATE, ("persona_1", "persona_2")) if protocol == "better" else None
    results = []
    for prun in pruns:
        items = prefs_items(prun, with_prompt=protocol == "typicality")
        if not items:
            raise UsageError(f"{prun.path} has no row with both a chosen-side and a rejected-side persona")
        out_dir = _out_dir(output_dir, prun, len(pruns) > 1)
        if protocol == "better":
            run = _choice_run("persona-prefs", prun, items, options, protocol=protocol, template=template,
                              values={}, slots=("persona_1", "persona_2"), output_dir=out_dir, run_name=run_name,
                              fresh=fresh, description=f"persona preferences ({prun.name})")
            verdicts = choice_verdicts(run.results())
        else:
            run, _ = _judge_run("persona-prefs", prun, items, rub, options, judge, output_dir=out_dir,
                                run_name=run_name, fresh=fresh)
            verdicts = run.results()
        metrics = prefs_metrics(verdicts)
        run.write_metrics({"prefs": metrics, "protocol": protocol, "personas": str(prun.path)})
        failed = len(run.failures())
        run.finish(_status(options, failed))
        results.append({"personas": str(prun.path), "label": prun.label, "split": prun.split, "protocol": protocol,
                        "judge_run": str(run.path), "prefs": metrics, "failures": failed})
    out: dict[str, Any] = {"runs": results, "protocol": protocol}
    if make_plot:
        from prefkit import plots

        target = Path(plot) if plot else (Path(results[0]["judge_run"]) / "prefs" if len(results) == 1
                                          else Path(results[0]["judge_run"]).parent / "prefs-compare")
        labels = _unique_labels([r["label"] for r in results])
        parts = {name: [r["prefs"]["proportions"][k] if r["prefs"]["n"] else 0.0 for r in results]
                 for k, name in (("chosen", "chosen-side persona"), ("tie", "tie"),
                                 ("rejected", "rejected-side persona"))}
        title = ("Which persona is better?" if protocol == "better" else "Which persona is the more typical user?")
        out["plot"] = [str(p) for p in plots.stacked_bars(labels, parts, path=target, title=title,
                                                          ylabel="proportion of rows")]
    return out
