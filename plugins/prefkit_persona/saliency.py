"""Word saliency of chosen-side vs rejected-side personas.

``saliency(w, side) = count(w, side) / count(w)``, counted over the lemmatised
tokens of each persona's first sentence, cut at the first comparison phrase
(``rather than``, ``over``, ``versus``, ``compared to``, ``instead of``, as whole
words) so that the half describing what the user does *not* prefer does not
count for them. Only words with ``count(w) >= min_count`` are ranked.

Tokens are lower-cased runs of letters (hyphenated compounds such as
``detail-oriented`` stay one token and are kept as written); other tokens are
lemmatised with ``simplemma`` (English), whose data ships inside the package:
nothing is downloaded. This is **not** the paper's lemmatiser (NLTK's WordNet
lemmatiser, which needs a corpus download). Most words get the same lemma, but
simplemma maps some words WordNet keeps as they are: "analytical" → "analytic",
"oriented" → "orient" (see :data:`LEMMATISER_NOTE`), so a word list can differ
slightly from the paper's.
Function words (and "user"/"prefer", which every persona has) are skipped
unless ``--keep-stopwords`` is given.

Several runs can be pooled into one count (the paper pools the personas of all
its models); when the two sides hold different numbers of personas the ratio
leans towards the larger side (a word used equally often per persona gets a
saliency above 0.5 there), which is reported as a warning.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable

from .inference import SIDES

COMPARISON_PHRASES = ("rather than", "over", "versus", "compared to", "instead of")
LEMMATISER_NOTE = ("lemmas come from simplemma, not the paper's WordNet lemmatiser: some words map differently "
                   "(e.g. 'analytical' -> 'analytic', which WordNet keeps as 'analytical'), so word lists can differ "
                   "slightly from the paper's")
# Function words (and the persona template's own words) skipped by default; --keep-stopwords keeps them.
STOPWORDS = frozenset("""
a an the and or but nor so yet of to in on at by for with from into onto about as than that this these those
which who whom whose what when where while if then it its they them their he she his her be do have not no
very more most less least also too just such both each either neither one ones own same other some any all
can could would should may might must will shall user prefer
""".split())
_CUT = re.compile(r"\b(?:" + "|".join(p.replace(" ", r"\s+") for p in COMPARISON_PHRASES) + r")\b", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'“(])")
_TOKEN = re.compile(r"[a-z]+(?:['’-][a-z]+)*")


def imbalance_warnings(n: dict[str, int]) -> list[str]:
    """A warning when the sides hold different numbers of personas (the ratio is then biased)."""
    a, b = n.get("chosen", 0), n.get("rejected", 0)
    if a == b:
        return []
    return [f"the sides hold different numbers of personas (chosen {a}, rejected {b}): saliency leans towards the "
            f"{'chosen' if a > b else 'rejected'} side (a word used equally often per persona scores "
            f"{max(a, b) / (a + b):.2f} there, not 0.50)"]


def first_sentence(text: str) -> str:
    text = " ".join((text or "").split())
    return _SENTENCE_END.split(text, maxsplit=1)[0] if text else ""


def cut_comparison(text: str) -> str:
    m = _CUT.search(text)
    return text[:m.start()] if m else text


def _lemmatize(token: str) -> str:
    if "-" in token or "'" in token or "’" in token:
        return token
    import simplemma

    return simplemma.lemmatize(token, lang="en").lower()


def persona_tokens(persona: str) -> list[str]:
    """The lemmatised tokens of a persona that count for saliency."""
    text = cut_comparison(first_sentence(persona)).lower()
    return [_lemmatize(t) for t in _TOKEN.findall(text)]


def saliency(personas: Iterable[tuple[str, str]], *, min_count: int = 10, top: int = 10,
             per_persona: bool = False, stopwords: Iterable[str] | None = STOPWORDS) -> dict[str, Any]:
    """``personas``: (side, persona) pairs. Returns per side the top words by saliency.

    Each occurrence counts (``per_persona=True`` counts a word once per persona).
    Lemmas in ``stopwords`` (default: function words and "user"/"prefer") are
    skipped; pass ``stopwords=None`` to keep every word.
    """
    stop = frozenset(stopwords or ())
    counts = {s: Counter() for s in SIDES}
    n = {s: 0 for s in SIDES}
    for side, persona in personas:
        if side not in counts or not (persona or "").strip():
            continue
        toks = [t for t in persona_tokens(persona) if t not in stop]
        counts[side].update(set(toks) if per_persona else toks)
        n[side] += 1
    total = Counter()
    for c in counts.values():
        total.update(c)
    out: dict[str, Any] = {"min_count": min_count, "top": top, "personas": n, "stopwords_removed": bool(stop),
                           "vocabulary": len(total), "eligible": sum(1 for w, c in total.items() if c >= min_count),
                           "lemmatiser": "simplemma", "warnings": imbalance_warnings(n)}
    for side in SIDES:
        scored = [{"word": w, "saliency": counts[side][w] / c, "count": counts[side][w], "total": c}
                  for w, c in total.items() if c >= min_count]
        scored.sort(key=lambda d: (-d["saliency"], -d["total"], d["word"]))
        out[side] = scored[:top]
    return out


def saliency_of_runs(runs: list[str], *, min_count: int = 10, top: int = 10, per_persona: bool = False,
                     keep_stopwords: bool = False, pool: bool = False, output: str | None = None) -> list[dict[str, Any]]:
    """Saliency of each persona run (or of all runs pooled into one count); each result is written as JSON."""
    import json
    from pathlib import Path

    from .runs import load_persona_run

    pruns = [load_persona_run(r) for r in runs]
    groups = [pruns] if pool else [[p] for p in pruns]
    results = []
    for group in groups:
        pairs = [(r["side"], r["persona"]) for p in group for r in p.usable()]
        res = saliency(pairs, min_count=min_count, top=top, per_persona=per_persona,
                       stopwords=None if keep_stopwords else STOPWORDS)
        res["run"] = str(group[0].path) if len(group) == 1 else ", ".join(str(p.path) for p in group)
        res["runs"] = [str(p.path) for p in group]
        res["pooled"] = len(group) > 1
        res["label"] = f"{len(group)} pooled runs" if len(group) > 1 else group[0].name
        if output and len(groups) == 1:
            target = Path(output)
        elif output:
            target = Path(output) / f"{group[0].name}.json"
        else:
            target = group[0].path / ("saliency-pooled.json" if len(group) > 1 else "saliency.json")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(res, indent=2, ensure_ascii=False))
        res["written_to"] = str(target)
        results.append(res)
    return results
