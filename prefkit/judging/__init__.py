"""The judge layer: LLM judges, rubrics, tolerant parsing, win rates.

::

    from prefkit.backends import BackendOptions
    from prefkit.judging import get_rubric, judge_pairwise, win_rate

    verdicts = judge_pairwise(items, "personalization", BackendOptions(backend="openai", model="gpt-4o"))
    print(win_rate(verdicts, bootstrap=1000, seed=0, length_controlled=True))

* :func:`judge_pairwise` — A vs B in both orders (disagreement = tie);
* :func:`judge_score` — an absolute 1–N score against a rubric;
* :class:`Rubric` / :func:`get_rubric` — ``quality``, ``personalization``,
  plugin rubrics, or a YAML/JSON/text file;
* :func:`win_rate`, :func:`score_summary` — metrics with
  standard errors and seeded bootstrap CIs, length-controlled win rate;
* :func:`parse_pairwise`, :func:`parse_score` — the tolerant parsers.

Everything here is light to import (numpy and the backend engine load on use).
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule (resolved on first use, so the CLI can import ``prefkit.judging.options`` cheaply)
_LAZY = {
    "Rubric": "rubric", "get_rubric": "rubric", "builtin_rubrics": "rubric",
    "judge_pairwise": "judges", "judge_score": "judges", "combine_orders": "judges",
    "PairwiseJudge": "judges", "ScoreJudge": "judges",
    "JudgeOptions": "options",
    "win_rate": "metrics", "score_summary": "metrics", "outcome_counts": "metrics",
    "length_controlled_win_rate": "metrics",
    "parse_pairwise": "parsing", "parse_score": "parsing", "split_feedback": "parsing",
    "pairwise_messages": "prompts", "score_messages": "prompts", "reask_message": "prompts",
    "resolve_format": "prompts",
}


def __getattr__(name: str) -> Any:
    sub = _LAZY.get(name)
    if sub is None:
        raise AttributeError(f"module 'prefkit.judging' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{sub}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
