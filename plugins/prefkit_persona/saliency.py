"""Word saliency of chosen-side vs rejected-side personas.

``saliency(w, side) = count(w, side) / count(w)``, counted over the lemmatised
tokens of each persona's first sentence, cut at the first comparison phrase
(``rather than``, ``over``, ``versus``, ``compared to``, ``instead of``, as whole
words) so that the half describing what the user does *not* prefer does not
count for them. Only words with ``count(w) >= min_count`` are ranked.

Tokens are lower-cased runs of letters (hyphenated compounds such as
``detail-oriented`` stay one token and are kept as written); other tokens are
lemmatised with ``simplemma`` (English), whose data ships inside the package:
nothing is downloaded.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable

from .inference import SIDES

COMPARISON_PHRASES = ("rather than", "over", "versus", "compared to", "instead of")
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
             per_persona: bool = False) -> dict[str, Any]:
    """``personas``: (side, persona) pairs. Returns per side the top words by saliency.

    Each occurrence counts (``per_persona=True`` counts a word once per persona).
    """
    counts = {s: Counter() for s in SIDES}
    n = {s: 0 for s in SIDES}
    for side, persona in personas:
        if side not in counts or not (persona or "").strip():
            continue
        toks = persona_tokens(persona)
        counts[side].update(set(toks) if per_persona else toks)
        n[side] += 1
    total = Counter()
    for c in counts.values():
        total.update(c)
    out: dict[str, Any] = {"min_count": min_count, "top": top, "personas": n,
                           "vocabulary": len(total), "eligible": sum(1 for w, c in total.items() if c >= min_count)}
    for side in SIDES:
        scored = [{"word": w, "saliency": counts[side][w] / c, "count": counts[side][w], "total": c}
                  for w, c in total.items() if c >= min_count]
        scored.sort(key=lambda d: (-d["saliency"], -d["total"], d["word"]))
        out[side] = scored[:top]
    return out
