"""Small statistics every report needs, defined once (plugins use ``prefkit.mean_se``/``prefkit.proportion_se``).

The rule for an undefined standard error is the same everywhere: ``nan`` (not 0, not None), because
one value says nothing about spread. Printers show it as they like; JSON writers turn it into ``NaN``.
"""

from __future__ import annotations

import math
from typing import Iterable


def mean_se(values: Iterable[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation with ``n - 1``, over ``sqrt(n)``).

    Empty: ``(nan, nan)``; one value: ``(value, nan)``.
    """
    vals = [float(v) for v in values]
    n = len(vals)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(vals) / n
    if n < 2:
        return m, float("nan")
    var = sum((v - m) ** 2 for v in vals) / (n - 1)
    return m, math.sqrt(var / n)


def proportion_se(p: float, n: int) -> float:
    """Standard error of a proportion ``p`` measured on ``n`` items: ``sqrt(p (1 - p) / n)``; ``nan`` when n = 0."""
    return math.sqrt(p * (1 - p) / n) if n else float("nan")
