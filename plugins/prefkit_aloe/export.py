"""Export an ``aloe generate`` run as Hugging Face datasets in TRL's conversational formats.

* **SFT** (``messages``): one multi-turn example per conversation. The loss goes on the assistant
  turns (prefkit's SFT trainer masks everything else). The assistant turns are the judged
  **preferred** replies (``--sft-path preferred``, default): the realised trajectory with every
  rejected continuation swapped for that turn's preferred reply, so the model never imitates a
  rejected reply (the user message after a swapped turn answered the rejected one; that is the
  price). ``--sft-path realised`` keeps the conversation exactly as it happened (rejected
  continuations included, as training targets too). Unlike the reference, there are no ten
  cumulative prefixes per conversation (which weight early turns ten times) and no repetition of
  the first user message at every turn (a reference bug).
* **DPO** (``prompt``/``chosen``/``rejected``): one pair per turn (per rejected reply when several
  responder models wrote plain replies): ``prompt`` = the **realised** history (a list of messages,
  both preferred and rejected continuations as they happened) + the turn's user message, ``chosen``
  = ``[preferred]``, ``rejected`` = ``[rejected_k]`` (assistant messages). Pairs the judge tied on
  (inconsistent verdicts across the two orders) are left out by default (``--ties skip``).

Each format is written as ``DIR/<format>/`` (``Dataset.save_to_disk``) and ``DIR/<format>.jsonl``,
with a dataset card ``DIR/README.md`` recording the models per role and the generation settings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import prefkit

from .generate import COMMAND as GENERATE_COMMAND, read_turns, realised_history

EXPORT_COMMAND = "aloe-export"
FORMATS = ("sft", "dpo", "both")


@dataclass
class ExportConfig:
    """What ``aloe export`` does (every field is a flag)."""

    format: str = prefkit.opt("both", help="sft (one multi-turn 'messages' example per conversation), dpo (one "
                                           "prompt/chosen/rejected pair per turn) or both.")
    sft_path: str = prefkit.opt("preferred", help="SFT assistant turns: preferred (the judged-preferred reply at "
                                                  "every turn) or realised (the conversation as it happened).")
    ties: str = prefkit.opt("skip", help="DPO pairs the judge tied on (orders disagree): skip or keep.")
    complete_only: bool = prefkit.opt(True, help="Only conversations that reached their last turn (else every "
                                                 "committed turn).")
    system: str | None = prefkit.opt(None, help="A system message to put first in every example (default: none, "
                                                "as in the reference).")
    push_to_hub: str | None = prefkit.opt(None, help="Also push the datasets to this Hub repo (needs network and "
                                                     "a token).")
    private: bool = prefkit.opt(True, help="With --push-to-hub: create the repo private.")

    def check(self) -> None:
        if self.format not in FORMATS:
            raise prefkit.UsageError(f"--format must be one of {', '.join(FORMATS)} (got {self.format!r})")
        if self.sft_path not in ("preferred", "realised"):
            raise prefkit.UsageError(f"--sft-path must be preferred or realised (got {self.sft_path!r})")
        if self.ties not in ("skip", "keep"):
            raise prefkit.UsageError(f"--ties must be skip or keep (got {self.ties!r})")

    def formats(self) -> list[str]:
        return ["sft", "dpo"] if self.format == "both" else [self.format]


# ============================================================================ rows
def _sys(system: str | None) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}] if system else []


def sft_rows(conversations: dict[str, list[dict[str, Any]]], *, path: str = "preferred",
             system: str | None = None) -> list[dict[str, Any]]:
    """One ``messages`` row per conversation (see the module docstring)."""
    rows = []
    for cid, turns in conversations.items():
        if not turns:
            continue
        msgs = _sys(system)
        for t in turns:
            reply = t["preferred"] if path == "preferred" else t["assistant"]
            msgs += [{"role": "user", "content": t["user"]}, {"role": "assistant", "content": reply}]
        rows.append({"messages": msgs, "conversation_id": cid, "persona_id": turns[0]["persona_id"],
                     "turns": len(turns),
                     "swapped_turns": sum(1 for t in turns if path == "preferred" and t["chosen_index"] != 0)})
    return rows


def dpo_rows(conversations: dict[str, list[dict[str, Any]]], *, ties: str = "skip",
             system: str | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One pair per turn and rejected reply, the realised history as the prompt; and counts of what was skipped."""
    rows, skipped = [], {"tie_pairs_skipped": 0}
    for cid, turns in conversations.items():
        for i, t in enumerate(turns):
            prompt = [*_sys(system), *realised_history(turns[:i]), {"role": "user", "content": t["user"]}]
            for k, rej in enumerate(t["rejected"]):
                tie = bool((t.get("rejected_ties") or [False] * len(t["rejected"]))[k])
                if tie and ties == "skip":
                    skipped["tie_pairs_skipped"] += 1
                    continue
                rows.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": t["preferred"]}],
                             "rejected": [{"role": "assistant", "content": rej}], "conversation_id": cid,
                             "persona_id": t["persona_id"], "turn": int(t["turn"]),
                             "chosen_source": t["preferred_source"], "rejected_source": t["rejected_sources"][k],
                             "tie": tie})
    return rows, skipped


# ============================================================================ the card
def dataset_card(source: dict[str, Any], cfg: ExportConfig, counts: dict[str, Any]) -> str:
    gen = source.get("config", {}).get("generate", {})
    roles = source.get("roles") or source.get("config", {}).get("roles", {})
    role_lines = "\n".join(f"| {r} | `{m}` |" for r, m in roles.items()) or "| (unknown) | |"
    judge = source.get("judge") or {}
    return f"""---
tags: [prefkit, aloe, preference-alignment, multi-turn, synthetic]
configs:
{chr(10).join(f"- config_name: {f}{chr(10)}  data_files: {f}.jsonl" for f in cfg.formats())}
---
# ALOE multi-turn preference data (generated with prefkit)

Synthetic conversations between a simulated user with a hidden persona and chatbot replies,
generated with `prefkit aloe generate`, the method of "Aligning LLMs with Individual
Preferences via Interaction" (Wu et al., COLING 2025). At each turn a persona-aware reply (given
the persona inferred so far) and plain replies were judged by a model that sees the true persona,
in both orders; the dialogue continued from a seeded random branch.

## Models per role

| role | model |
|---|---|
{role_lines}

(`responder.0` wrote the persona-aware reply and a plain reply; further `responder.k` wrote plain replies.)

## Generation settings

```json
{json.dumps(gen, indent=2, sort_keys=True)}
```

Per-role settings (backend, model, base URL, temperature, most new tokens `max_new`, seed; `null` = the
backend default):

```json
{json.dumps(source.get("role_settings") or {}, indent=2, sort_keys=True)}
```

Source run: `{source.get('run')}`. Judge statistics: {json.dumps(judge, sort_keys=True)}

## Formats (TRL conversational)

- `sft`: `messages` (one multi-turn conversation per row; assistant turns = {cfg.sft_path} replies), plus
  `conversation_id`, `persona_id`, `turns`, `swapped_turns`.
- `dpo`: `prompt` (the realised history + the user's message), `chosen`, `rejected` (one assistant
  message each), plus `conversation_id`, `persona_id`, `turn`, `chosen_source`, `rejected_source`, `tie`.
  Ties: {cfg.ties}.

## Counts

```json
{json.dumps(counts, indent=2, sort_keys=True)}
```
"""


# ============================================================================ the run
def export(run_dir: str, cfg: ExportConfig, *, output_dir: str | None = None, run_name: str | None = None,
           fresh: bool = False) -> dict[str, Any]:
    """Write the datasets; returns a summary dict (paths, counts)."""
    cfg.check()
    src = Path(run_dir)
    if not (src / "manifest.json").is_file():
        raise prefkit.UsageError(f"{src} is not a run directory (no manifest.json); give an 'aloe generate' run")
    source = prefkit.Run.load(src)
    if source.manifest.get("command") != GENERATE_COMMAND:
        raise prefkit.UsageError(f"{src} is a {source.manifest.get('command')!r} run, not an 'aloe generate' run")
    turns = read_turns(src)
    max_turns = int((source.manifest.get("config", {}).get("generate", {}) or {}).get("turns") or 0)
    final = {row["conversation"] for row in source.results() if row.get("kind") == "turn" and row.get("final")}
    total = len(turns)
    if cfg.complete_only:
        turns = {c: t for c, t in turns.items() if c in final or (max_turns and len(t) >= max_turns)}
    if not turns:
        raise prefkit.UsageError(f"{src} holds no {'complete ' if cfg.complete_only else ''}conversations yet"
                                 + (" (use --no-complete-only to export partial ones)" if cfg.complete_only and total else ""))
    turns = dict(sorted(turns.items()))
    source_info = {"run": str(src.resolve()), "config": source.manifest.get("config", {}),
                   "roles": source.manifest.get("roles") or source.manifest.get("config", {}).get("roles", {}),
                   "judge": (source.metrics() or {}).get("judge", {}),
                   "role_settings": source.manifest.get("config", {}).get("role_settings", {})}
    identity = {"source": str(src.resolve()), "export": asdict(cfg) | {"push_to_hub": None, "private": None}}
    import datasets
    from datasets import Dataset

    datasets.disable_progress_bars()
    out: dict[str, Any] = {"conversations": len(turns), "conversations_in_run": total}
    with prefkit.Run.open(EXPORT_COMMAND, identity=identity, config=asdict(cfg), output_dir=output_dir,
                          run_name=run_name, name_hint=src.name, fresh=fresh) as run:
        dest = Path(run.path)
        files: dict[str, str] = {}
        built: dict[str, Any] = {}
        for fmt in cfg.formats():
            if fmt == "sft":
                rows = sft_rows(turns, path=cfg.sft_path, system=cfg.system)
            else:
                rows, skipped = dpo_rows(turns, ties=cfg.ties, system=cfg.system)
                out.update(skipped)
            if not rows:
                raise prefkit.UsageError(f"no {fmt} rows to export (all pairs were ties? try --ties keep)")
            out[f"{fmt}_rows"] = len(rows)
            jsonl = dest / f"{fmt}.jsonl"
            tmp = jsonl.with_suffix(".jsonl.tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                for r in rows:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            tmp.replace(jsonl)
            ds = Dataset.from_list(rows)
            ds.save_to_disk(str(dest / fmt))
            built[fmt] = ds
            files[fmt] = str(dest / fmt)
            files[f"{fmt}_jsonl"] = str(jsonl)
        card = dest / "README.md"
        card.write_text(dataset_card(source_info, cfg, out), encoding="utf-8")
        files["card"] = str(card)
        pushed = None
        if cfg.push_to_hub:
            pushed = _push(built, card, cfg.push_to_hub, private=cfg.private)
        run.write_metrics({"export": out})
        run.finish(**out)
    return {"run": str(run.path), "status": run.status, "source": str(src), "formats": cfg.formats(),
            "files": files, "counts": out, "pushed": pushed}


def _push(datasets: dict[str, Any], card: Path, repo: str, *, private: bool) -> str:
    """Push each format as a config of ``repo`` and the card; one clear error line on failure."""
    import os

    if any(os.environ.get(v, "").strip().lower() in ("1", "on", "yes", "true")
           for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        raise prefkit.PrefkitError(f"--push-to-hub {repo}: HF_HUB_OFFLINE is set (the local export is done; "
                                   "push later without it)")
    try:
        for fmt, ds in datasets.items():
            ds.push_to_hub(repo, config_name=fmt, private=private)
        from huggingface_hub import HfApi

        HfApi().upload_file(path_or_fileobj=str(card), path_in_repo="README.md", repo_id=repo, repo_type="dataset")
    except Exception as exc:  # noqa: BLE001 - any hub/network/auth error is one line
        raise prefkit.PrefkitError(f"--push-to-hub {repo} failed (the local export is done): "
                                   f"{prefkit.one_line(exc)}") from None
    return f"https://huggingface.co/datasets/{repo}"


def print_export(res: dict[str, Any]) -> None:
    c = res["counts"]
    prefkit.print_table([{"format": f, "rows": c.get(f"{f}_rows"), "dataset": res["files"][f],
                          "jsonl": res["files"][f"{f}_jsonl"]} for f in res["formats"]],
                        title=f"aloe export: {c['conversations']} conversations"
                              + (f" ({c['tie_pairs_skipped']} tied DPO pairs skipped)" if c.get("tie_pairs_skipped") else ""))
    prefkit.info(f"card: {res['files']['card']}" + (f" · pushed: {res['pushed']}" if res.get("pushed") else ""))

