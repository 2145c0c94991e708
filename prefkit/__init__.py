"""prefkit: personalized preference alignment of LLMs, as a plugin-based toolkit.

The public API plugins and scripts import. Names are resolved lazily so that
``import prefkit`` (and ``prefkit --help``) never pulls in torch, transformers,
datasets or the provider SDKs.
"""

from __future__ import annotations

import importlib
from typing import Any

from .hookspecs import hookimpl

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    # errors
    "PrefkitError": "prefkit.errors",
    "UsageError": "prefkit.errors",
    "PluginError": "prefkit.errors",
    "one_line": "prefkit.errors",
    # plugins
    "load_plugins": "prefkit.plugins",
    "registry": "prefkit.plugins",
    "get_plugins": "prefkit.plugins",
    # options
    "opt": "prefkit.options",
    "with_options": "prefkit.options",
    "RunOptions": "prefkit.options",
    "split_csv": "prefkit.options",
    # data
    "PreferenceRecord": "prefkit.data",
    "DatasetSource": "prefkit.data",
    "NamedSource": "prefkit.data",
    "load_records": "prefkit.data",
    "load_rows": "prefkit.data",
    "get_source": "prefkit.data",
    "read_table": "prefkit.data",
    "parse_dialogue": "prefkit.data",
    # runs
    "Run": "prefkit.runs",
    "list_runs": "prefkit.runs",
    "read_jsonl": "prefkit.runs",
    # backends (issue: backend engine)
    "ChatRequest": "prefkit.backends",
    "Completion": "prefkit.backends",
    "BackendOptions": "prefkit.backends",
    "Backend": "prefkit.backends",
    "get_backend": "prefkit.backends",
    "run_requests": "prefkit.backends",
    "complete": "prefkit.backends",
    "acomplete": "prefkit.backends",
    # training (issue: training layer)
    "TrainConfig": "prefkit.training",
    "train": "prefkit.training",
    "merge_adapter": "prefkit.training",
    "get_trainer": "prefkit.training",
    "BaseTrainConfig": "prefkit.training",
    "SFTTrainConfig": "prefkit.training",
    "DPOTrainConfig": "prefkit.training",
    "RewardTrainConfig": "prefkit.training",
    "TrainModelConfig": "prefkit.training",
    "TrainingPreset": "prefkit.training",
    "get_preset": "prefkit.training",
    "train_chain": "prefkit.training",
    "ChainStage": "prefkit.training",
    "ChainResult": "prefkit.training",
    "TRLTrainer": "prefkit.training",
    "explicit_settings": "prefkit.training",
    "FitStats": "prefkit.training",
    # judging (issue: judges)
    "Rubric": "prefkit.judging",
    "get_rubric": "prefkit.judging",
    "judge_pairwise": "prefkit.judging",
    "judge_score": "prefkit.judging",
    "win_rate": "prefkit.judging",
    # reports
    "plots": "prefkit.reports.plots",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'prefkit' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["hookimpl", "__version__", *_LAZY]
