"""``JudgeOptions``: how judges are prompted and read (kept tiny: the CLI imports it at start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..options import opt

DEFAULT_JUDGE_MAX_TOKENS = 768


@dataclass
class JudgeOptions:
    """How a judge is prompted and how its answers are read (shared by the judge commands)."""

    judge_format: str = opt("auto", help="Prompt format: prometheus (Prometheus-2's layout, feedback then "
                            "[RESULT] X), chat (general chat models), or auto (prometheus when the model name "
                            "contains 'prometheus').")
    reasks: int = opt(2, help="Times to re-ask a judge whose answer has no readable verdict/score; after that the "
                      "item counts as a parse failure.")
    judge_max_tokens: int = opt(DEFAULT_JUDGE_MAX_TOKENS, help="Most tokens for a judge's answer when --max-tokens "
                                "is not given (feedback + verdict).")

    def __post_init__(self) -> None:
        if self.reasks < 0:
            from ..errors import UsageError

            raise UsageError(f"--reasks must be 0 or more (got {self.reasks})")

    def identity(self) -> dict[str, Any]:
        return {"judge_format": self.judge_format, "reasks": self.reasks, "judge_max_tokens": self.judge_max_tokens}


__all__ = ["JudgeOptions", "DEFAULT_JUDGE_MAX_TOKENS"]
