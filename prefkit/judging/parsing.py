"""Tolerant parsing of judge outputs.

Judges are asked to end with ``[RESULT] X`` (the Prometheus-2 output format),
but real models wander: ``Result: B``, ``**Verdict:** Response A``,
``[[B]]``, ``Response A is better``, ``Score: 4``, ``4/5``, ``4 out of 5`` ...
The parsers try the most explicit signal first and refuse to guess when the
text is ambiguous (a verdict naming both sides, a score out of range, the
template echoed back): ``None`` means "unparseable", which the judges answer
with a bounded re-ask and, failing that, count as a parse failure — never as a
win for either side.

Pairwise labels are the *displayed* labels ``"A"``/``"B"`` (the judges map
them back to the original sides), plus ``"tie"``.
"""

from __future__ import annotations

import re

A, B, TIE = "A", "B", "tie"

# ``[RESULT]`` in its usual spellings: [RESULT], [Result], RESULT], [RESULT]:
_RESULT = r"\[?\s*RESULT\s*\]\s*:?"
_TIE_WORDS = r"(?:tie|tied|draw|equal(?:ly good)?|both(?: (?:are|responses are))? (?:equal|equally good|the same)|neither)"

_RESULT_SIDE = re.compile(_RESULT + r"[\s*]*(?:(?:the )?(?:better|winner|preferred)\s*(?:response|output)?\s*(?:is|:)?\s*)?"
                          + r"(?:\(\s*)?[\"'\[(]*\s*(?:response|output|answer|assistant|model|option)?\s*[\"'\[(]*\s*"
                          + r"(A|B|" + _TIE_WORDS + r")(?![A-Za-z0-9])", re.I)
_RESULT_ANY = re.compile(_RESULT, re.I)
_LABELLED_SIDE = re.compile(
    r"(?:^|\s|\*\*)\s*[#*\s]*(?:(?:the|my|our)\s+)?(?:final\s+)?(?:result|verdict|winner|decision|judg(?:e)?ment|answer|choice|"
    r"preferred(?:\s+response)?|better\s+response|best\s+response|preference)\s*[*]*"
    r"(?:\s*(?:is|was|would\s+be)\s*[:=\-]?|\s*[:=\-])\s*[*\s]*"
    r"[\"'\[(]*\s*(?:response|output|answer|assistant|model|option)?\s*[\"'\[(]*\s*"
    r"(A|B|" + _TIE_WORDS + r")(?![A-Za-z0-9])", re.I)
_DOUBLE_BRACKET = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.I)
_BETTER = re.compile(
    r"\b(?:response|output|answer|assistant)\s*\(?([AB])\)?\s+(?:is|was|seems|appears)\s+(?:clearly\s+|slightly\s+|much\s+|"
    r"significantly\s+|somewhat\s+|definitely\s+|overall\s+|therefore\s+|thus\s+)?"
    r"(better|superior|preferred|preferable|stronger|more\s+\w+|the\s+better(?:\s+\w+)?|the\s+winner|the\s+stronger(?:\s+\w+)?|"
    r"worse|inferior|weaker|less\s+\w+)", re.I)
_PREFER = re.compile(r"\b(?:I\s+(?:would\s+)?(?:prefer|choose|pick|select)|I\s+(?:would\s+)?go\s+with)\s+"
                     r"(?:response|output|answer)?\s*\(?([AB])\)?\b", re.I)
_BARE_SIDE = re.compile(r"^[\s*#\"'`(\[]*(?:response|output|answer)?\s*[(\[]*\s*([AB])\s*[)\]]*[\s.!*\"'`]*$", re.I)
_TIE_SENTENCE = re.compile(r"\b(?:it(?:'s| is) a tie|both responses are (?:equally|about equally) (?:good|bad|"
                           r"helpful|strong|weak|appropriate)|the two responses are (?:equally good|equivalent|"
                           r"of equal quality)|neither response is better)\b", re.I)
_PLACEHOLDER = re.compile(r"\beither\s+[\"']?A\b|[\"']?\bA\b[\"']?\s*(?:,|or|/)\s*[\"']?\bB\b", re.I)


def _norm_side(token: str) -> str | None:
    t = token.strip().strip("\"'()[]*").lower()
    if t in ("a", "1"):
        return A
    if t in ("b", "2"):
        return B
    if t == "c" or re.fullmatch(_TIE_WORDS, t, re.I):
        return TIE
    return None


def _single(values: list[str | None]) -> str | None:
    vals = {v for v in values if v is not None}
    return vals.pop() if len(vals) == 1 else None


def parse_pairwise(text: str | None, *, allow_tie: bool = True) -> str | None:
    """The side a pairwise judge picked: ``"A"``, ``"B"``, ``"tie"``, or ``None`` if unparseable.

    Signals, most explicit first: the last ``[RESULT] X``; a labelled line
    (``Result: B``, ``Verdict: Response A``, ``Winner - B``); MT-bench-style
    ``[[A]]``; a sentence (``Response A is better``, ``Response B is worse``,
    ``I prefer B``); a bare ``A``/``B``. A tie is only accepted when
    ``allow_tie``; otherwise a tie verdict reads as unparseable (so the judge
    is re-asked to choose).
    """
    if not text or not text.strip():
        return None
    t = text.strip()

    def accept(v: str | None) -> str | None:
        if v == TIE and not allow_tie:
            return None
        return v

    # 1. [RESULT] X  (the last marker decides; an echoed template "Either A or B" is not a verdict)
    markers = list(_RESULT_ANY.finditer(t))
    if markers:
        last = markers[-1]
        tail = t[last.end():last.end() + 80]
        if _PLACEHOLDER.search(tail.split("\n")[0]):
            return None
        sides = {_norm_side(m.group(1)) for m in (_RESULT_SIDE.match(t, mk.start()) for mk in markers) if m}
        if len(sides) > 1:
            return None  # "[RESULT] A ... [RESULT] B": the instructions echoed back, or a judge changing its mind
        m = _RESULT_SIDE.match(t, last.start())
        if m:
            return accept(_norm_side(m.group(1)))
        # "[RESULT]" followed by something else (a number, nothing): fall through to other signals
    # 2. labelled lines: Result: B / Verdict: Response A / **Winner:** B
    labelled = [_norm_side(m.group(1)) for m in _LABELLED_SIDE.finditer(t)]
    if labelled:
        v = labelled[-1]
        if not (len(t) > 40 and _PLACEHOLDER.search(t[-60:])):
            return accept(v)
    # 3. [[A]] / [[B]] / [[C]] (tie)
    brackets = [_norm_side(m.group(1)) for m in _DOUBLE_BRACKET.finditer(t)]
    if brackets:
        return accept(_single(brackets))
    # 4. sentences: "Response A is better", "Response B is worse", "I prefer B"
    picks: list[str | None] = []
    for m in _BETTER.finditer(t):
        side, how = m.group(1).upper(), m.group(2).lower()
        negative = how.startswith(("worse", "inferior", "weaker", "less"))
        picks.append((B if side == A else A) if negative else side)
    picks += [m.group(1).upper() for m in _PREFER.finditer(t)]
    if picks:
        return _single(picks)  # both sides called better: ambiguous
    if _TIE_SENTENCE.search(t):
        return accept(TIE)
    # 5. a bare answer: "B", "(A)", "Response B."
    m = _BARE_SIDE.match(t)
    if m:
        return m.group(1).upper()
    return None


_NUM = r"(\d+(?:\.\d+)?)"
_RESULT_SCORE = re.compile(_RESULT + r"[\s*\"'(\[]*(?:score\s*(?::|=|of|is)?\s*)?" + _NUM
                           + r"(?:\s*(?:/|out\s+of)\s*(\d+))?", re.I)
_LABELLED_SCORE = re.compile(
    r"\b(?:final\s+|overall\s+|total\s+)?(?:score|rating|grade|mark)\s*[*]*"
    r"(?:\s*(?:is|was|of|would\s+be)\s*[:=\-]?|\s*[:=\-])\s*[*\s\"'(\[]*" + _NUM
    + r"(?:\s*(?:/|out\s+of)\s*(\d+))?", re.I)
_DOUBLE_BRACKET_NUM = re.compile(r"\[\[\s*" + _NUM + r"\s*(?:/\s*(\d+))?\s*\]\]")
_FRACTION = re.compile(r"(?<![\w.])" + _NUM + r"\s*(?:/|out\s+of)\s*(\d+)(?![\w.]|/)", re.I)
_GIVE = re.compile(r"\b(?:give|assign|award|rate)\s+(?:it|this(?:\s+response)?|the\s+response)\s+(?:a|an)?\s*"
                   + r"(?:score\s+of\s+)?" + _NUM + r"\b", re.I)
_BARE_NUM = re.compile(r"^[\s*#\"'`(\[]*" + _NUM + r"[\s.)\]*\"'`]*$")


def _score_value(num: str, denom: str | None, low: int, high: int) -> int | None:
    if denom is not None and int(denom) != high:
        return None  # "4/10" on a 1-5 scale: refuse to rescale
    try:
        value = float(num)
    except ValueError:
        return None
    if not value.is_integer():
        return None  # "3.5": the scale is integers; ask again
    value_i = int(value)
    return value_i if low <= value_i <= high else None


def parse_score(text: str | None, *, low: int = 1, high: int = 5) -> int | None:
    """An integer score in ``[low, high]`` from a judge output, or ``None``.

    Signals, most explicit first: the last ``[RESULT] N``; the last labelled
    score (``Score: 4``, ``Rating: 4/5``, ``score of 4``); ``[[4]]``; a fraction
    with the scale's maximum (``4/5``, ``4 out of 5``); ``I'd give it a 4``; a
    bare number. Out-of-range, non-integer and other-scale values are
    unparseable.
    """
    if not text or not text.strip():
        return None
    t = text.strip()
    markers = list(_RESULT_ANY.finditer(t))
    if markers:
        values = {m.group(1) for m in (_RESULT_SCORE.match(t, mk.start()) for mk in markers) if m}
        if len(values) > 1:
            return None  # several different "[RESULT] N": ambiguous
        m = _RESULT_SCORE.match(t, markers[-1].start())
        if m:
            return _score_value(m.group(1), m.group(2), low, high)
        tail = t[markers[-1].end():markers[-1].end() + 60]
        if re.search(r"\d", tail.split("\n")[0]) is None and re.search(r"[A-Za-z]", tail.split("\n")[0] or ""):
            return None  # "[RESULT] (an integer between 1 and 5)" echoed back
    for pattern in (_LABELLED_SCORE, _DOUBLE_BRACKET_NUM):
        found = list(pattern.finditer(t))
        if found:
            return _score_value(found[-1].group(1), found[-1].group(2), low, high)
    fractions = [m for m in _FRACTION.finditer(t) if int(m.group(2)) == high]
    if fractions:
        values = {_score_value(m.group(1), m.group(2), low, high) for m in fractions}
        return values.pop() if len(values) == 1 else None
    found = list(_GIVE.finditer(t))
    if found:
        return _score_value(found[-1].group(1), None, low, high)
    m = _BARE_NUM.match(t)
    if m:
        return _score_value(m.group(1), None, low, high)
    return None


def split_feedback(text: str | None) -> str:
    """The judge's reasoning: the text before the last ``[RESULT]`` marker, without a ``Feedback:`` label."""
    if not text:
        return ""
    t = text.strip()
    markers = list(_RESULT_ANY.finditer(t))
    if markers:
        t = t[:markers[-1].start()]
    t = re.sub(r"^\s*(?:#+\s*)?\**feedback\**\s*:\s*", "", t, flags=re.I)
    return t.strip()


__all__ = ["parse_pairwise", "parse_score", "split_feedback", "A", "B", "TIE"]
