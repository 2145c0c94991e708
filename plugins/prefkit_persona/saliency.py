"""Word saliency of chosen-side vs rejected-side personas.

``saliency(w, side) = count(w, side) / count(w)``, counted over the lemmatised
tokens of each persona's first sentence, cut at the first comparison phrase
(``rather than``, ``over``, ``versus``, ``compared to``, ``instead of``, as whole
words) so that the half describing what the user does *not* prefer does not
count for them. Only words with ``count(w) >= min_count`` are ranked.

Tokens are lower-cased runs of letters (hyphenated compounds such as
``detail-oriented`` stay one token and are kept as written); other tokens are
lemmatised with ``simplemma`` (English), whose data ships inside the package:
nothing is downloaded. Function words (and "user"/"prefer", which every persona
has) are skipped unless ``--keep-stopwords`` is given.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable

from .inference import SIDES

COMPARISON_PHRASES = ("rather than", "over", "versus", "compared to", "instead of")
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
                           "vocabulary": len(total), "eligible": sum(1 for w, c in total.items() if c >= min_count)}
    for side in SIDES:
        scored = [{"word": w, "saliency": counts[side][w] / c, "count": counts[side][w], "total": c}
                  for w, c in total.items() if c >= min_count]
        scored.sort(key=lambda d: (-d["saliency"], -d["total"], d["word"]))
        out[side] = scored[:top]
    return out
