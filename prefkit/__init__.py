"""prefkit: personalized preference alignment of LLMs, as a plugin-based toolkit.

The public API is exactly the names in ``_LAZY`` below (also ``prefkit.__all__``), plus the
``prefkit.testing`` package for tests. Plugins, scripts and the documented examples import only
these: ``import prefkit`` / ``from prefkit import NAME`` and ``prefkit.testing``.

Everything else is private, by this rule: **all submodules (``prefkit.runs``, ``prefkit.options``,
``prefkit.backends.engine`` ...) are implementation details**, whatever their names look like; they
move and change without notice. ``tests/core/test_import_rule.py`` fails when code under
``plugins/`` or ``docs/examples/`` imports anything else. A name a plugin needs is made public by
adding one line to ``_LAZY``.

Names are resolved lazily so that ``import prefkit`` (and ``prefkit --help``) never pulls in torch,
transformers, datasets, pluggy or the provider SDKs.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    # plugin hooks
    "hookimpl": "prefkit.hookspecs",
    "hookspec": "prefkit.hookspecs",
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
    "check_limit": "prefkit.options",
    # console helpers (stdout for data, stderr for status; one "Error:" line)
    "rich_console": "prefkit.console:console",  # the stdout rich Console (``prefkit.console`` is a submodule)
    "info": "prefkit.console",
    "warn": "prefkit.console",
    "error_line": "prefkit.console",
    "print_json": "prefkit.console",
    "print_table": "prefkit.console",
    "progress": "prefkit.console",
    # statistics and usage, defined once
    "mean_se": "prefkit.stats",
    "proportion_se": "prefkit.stats",
    "merge_usage": "prefkit.usage",
    # embeddings (offline sentence-transformer loader)
    "load_sentence_transformer": "prefkit.embeddings",
    "embedding_dimension": "prefkit.embeddings",
    "is_bundled": "prefkit.embeddings",
    "DEFAULT_EMBEDDER": "prefkit.embeddings",
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
    "RunStatus": "prefkit.runs",
    "STATUSES": "prefkit.runs",
    "ExitCode": "prefkit.runs",
    "exit_code": "prefkit.runs",
    "command_exit": "prefkit.runs",
    "runs_dir": "prefkit.runs",
    "slug": "prefkit.runs",
    "list_runs": "prefkit.runs",
    "read_jsonl": "prefkit.runs",
    # backends (issue: backend engine)
    "ChatRequest": "prefkit.backends",
    "Completion": "prefkit.backends",
    "BackendOptions": "prefkit.backends",
    "Backend": "prefkit.backends",
    "BackendError": "prefkit.backends",
    "get_backend": "prefkit.backends",
    "run_requests": "prefkit.backends",
    "complete": "prefkit.backends",
    "acomplete": "prefkit.backends",
    # conversations: many multi-turn, multi-role dialogues (issue 10 §1-3)
    "Dialogue": "prefkit.conversations",
    "Turn": "prefkit.conversations",
    "Reply": "prefkit.conversations",
    "CallFailed": "prefkit.conversations",
    "Reject": "prefkit.conversations",
    "ConversationResult": "prefkit.conversations",
    "DialogueResult": "prefkit.conversations",
    "run_dialogues": "prefkit.conversations",
    "arun_dialogues": "prefkit.conversations",
    "RoleSpec": "prefkit.backends.roles",
    "RoleDecl": "prefkit.backends.roles",
    "Roles": "prefkit.backends.roles",
    "with_roles": "prefkit.backends.roles",
    "parse_model_spec": "prefkit.backends.roles",
    "Answer": "prefkit.structured",
    "AnswerSpec": "prefkit.structured",
    "Choice": "prefkit.structured",
    "IntRange": "prefkit.structured",
    "JsonObject": "prefkit.structured",
    "Unparseable": "prefkit.structured",
    "parse_answer": "prefkit.structured",
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
    "read_config_file": "prefkit.training.config",
    "FitStats": "prefkit.training",
    # judging (issue: judges)
    "Rubric": "prefkit.judging",
    "get_rubric": "prefkit.judging",
    "judge_pairwise": "prefkit.judging",
    "judge_score": "prefkit.judging",
    "win_rate": "prefkit.judging",
    "JudgeOptions": "prefkit.judging",
    "parse_score": "prefkit.judging.parsing",
    # reports
    "plots": "prefkit.reports.plots",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'prefkit' has no attribute {name!r}")
    module, _, attr = module.partition(":")
    mod = importlib.import_module(module)
    value = getattr(mod, attr) if attr else mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["__version__", *_LAZY]
