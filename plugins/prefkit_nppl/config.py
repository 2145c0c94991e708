"""Configuration dataclasses of the NPPL plugin (light: no torch here).

Each dataclass drives both the Python API and the CLI flags (``prefkit.with_options``).
Defaults are the paper's (Kobalczyk et al., "Towards Few-shot Steerable Alignment")
unless a comment says otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from prefkit import opt

MODEL_KINDS = ("btl", "dpl", "nppl")
INPUT_LAYERS = ("mlp", "linear")
CONVENTIONS = ("unseen", "paper", "all")
EMPTY_CONTEXT = ("learned", "zero")
AGGREGATIONS = ("auto", "samples", "predictive")


def parse_int_list(value: str | list | None) -> list[int]:
    """``"0,1,3,5,10"`` → ``[0, 1, 3, 5, 10]`` (a clear error for anything else)."""
    from prefkit import UsageError
    from prefkit import split_csv

    out = []
    for v in split_csv(value):
        try:
            n = int(v)
        except ValueError:
            raise UsageError(f"expected a comma-separated list of integers, got {v!r}") from None
        if n < 0:
            raise UsageError(f"expected non-negative integers, got {n}")
        out.append(n)
    return out


@dataclass
class ModelConfig:
    """Architecture of a reward model (saved next to its weights as ``model_config.json``)."""

    kind: str = "nppl"
    input_dim: int = 1
    hidden_dim: int = 256
    latent_dim: int = 256
    heads: int = 8
    attn_dropout: float = 0.1
    option_encoder: str = "mlp"      # "mlp" (2 layers) or "linear"
    context_input: str = "mlp"       # input layer of the context encoder: "mlp" or "linear"
    sample_latents: bool = True      # Gaussian latent (softplus scale) or deterministic
    batch_norm: bool = True          # batch norm in the reward head (as the paper's code)
    min_scale: float = 1e-4          # added to the softplus scale: keeps the KL finite
    # q(z | empty context): "learned" = the encoder's output for an empty set (the reference:
    # trained through the KL term like any other context); "zero" = z forced to 0 and no KL
    # (prefkit's earlier behaviour; models saved then have no such field and load as "zero")
    empty_context: str = "learned"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f for f in cls.__dataclass_fields__}
        d = {"empty_context": "zero", **d}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TrainOptions:
    """``prefkit nppl train``: a reward model on the synthetic benchmark or an embedding dataset."""

    model: str = opt("nppl", help="Model: btl (Bradley-Terry), dpl (distributional), nppl (NP-BTL, conditioned on the user's context).")
    data: str = opt("synthetic", help="'synthetic' (the paper's benchmark, generated on the fly) or a directory written by 'prefkit nppl synthetic' / 'prefkit nppl embed'.")
    steps: int = opt(1000, help="Optimisation steps (one batch of tasks each).")
    batch_size: int = opt(64, help="Tasks (users) per batch.")
    num_targets: int = opt(20, help="Pairs per task (the context is drawn from them).")
    min_context: int = opt(0, help="Fewest context pairs of a training task.")
    max_context: int = opt(10, help="Most context pairs of a training task.")
    lr: float = opt(1e-4, help="Adam learning rate.")
    beta_kl: float = opt(0.001, help="KL weight beta in NLL + beta*KL(q(z|context)||q(z|targets)); 0.001 reproduces the paper, >=0.1 makes the model ignore the latent.")
    z_samples: int = opt(1, help="Latent samples per task in training (the NLL is averaged over them).")
    latent: str = opt("auto", help="gaussian (sampled latent with a softplus scale + KL term), deterministic (no sampling, no KL), or auto: gaussian for low-dimensional inputs (the paper's synthetic setup), deterministic for embeddings (its text setup).")
    hidden_dim: int = opt(256, help="Hidden width of every MLP.")
    latent_dim: int = opt(256, help="Latent size.")
    context_input: str = opt("auto", help="Input layer of the context encoder: mlp, linear, or auto (mlp for low-dimensional inputs, linear for embeddings).")
    option_encoder: str = opt("mlp", help="Option encoder: mlp or linear.")
    empty_context: str = opt("learned", help="q(z | no context): learned (the empty set is encoded and trained through the KL term, as the paper's code) or zero (z = 0, no KL: prefkit's earlier behaviour).")
    user_type: str | None = opt(None, help="Train on this user type only (a name such as helpfulness, or its index): the paper's single-attribute BTL baselines. Default: every user type mixed.")
    eval_every: int = opt(100, help="Evaluate on the validation split every N steps (the best checkpoint by validation NLL is kept).")
    select: str = opt("best", help="Checkpoint to keep: best (lowest validation NLL) or last.")
    seed: int = opt(0, help="Seed of initialisation and task sampling.")
    device: str = opt("auto", help="Device: auto, cpu, cuda, cuda:1, mps ...")
    threads: int = opt(1, help="CPU threads for torch (0: torch's default). These models are small: one thread is as fast and does not stall on a busy machine.")

    def model_config(self, input_dim: int) -> ModelConfig:
        from prefkit import UsageError

        if self.model not in MODEL_KINDS:
            raise UsageError(f"unknown --model {self.model!r} (choose from {', '.join(MODEL_KINDS)})")
        ctx = self.context_input
        if ctx == "auto":
            ctx = "mlp" if input_dim <= 16 else "linear"
        for name, v in (("--context-input", ctx), ("--option-encoder", self.option_encoder)):
            if v not in INPUT_LAYERS:
                raise UsageError(f"unknown {name} {v!r} (choose from {', '.join(INPUT_LAYERS)}{', auto' if name == '--context-input' else ''})")
        latent = self.latent
        if latent == "auto":
            latent = "gaussian" if input_dim <= 16 else "deterministic"
        if latent not in ("gaussian", "deterministic"):
            raise UsageError(f"unknown --latent {self.latent!r} (choose from auto, gaussian, deterministic)")
        return ModelConfig(kind=self.model, input_dim=input_dim, hidden_dim=self.hidden_dim,
                           latent_dim=self.latent_dim, option_encoder=self.option_encoder, context_input=ctx,
                           sample_latents=latent == "gaussian", empty_context=self.empty_context)

    def validate(self) -> None:
        from prefkit import UsageError

        if self.steps < 1:
            raise UsageError("--steps must be at least 1")
        if self.batch_size < 1 or self.num_targets < 2:
            raise UsageError("--batch-size must be >= 1 and --num-targets >= 2")
        if not 0 <= self.min_context <= self.max_context:
            raise UsageError("need 0 <= --min-context <= --max-context")
        if self.max_context >= self.num_targets:
            raise UsageError("--max-context must be smaller than --num-targets")
        if self.beta_kl < 0:
            raise UsageError("--beta-kl must be >= 0")
        if self.select not in ("best", "last"):
            raise UsageError("--select must be best or last")
        if self.z_samples < 1:
            raise UsageError("--z-samples must be >= 1")
        if self.empty_context not in EMPTY_CONTEXT:
            raise UsageError(f"--empty-context must be one of {', '.join(EMPTY_CONTEXT)}")


@dataclass
class EvalOptions:
    """``prefkit nppl eval``: accuracy vs number of context pairs."""

    contexts: str = opt("0,1,3,5,10", help="Context sizes to evaluate (comma-separated).")
    seeds: int = opt(5, help="Evaluation seeds (task samplings of the whole split); the table shows mean ± standard error.")
    conventions: str = opt("unseen,paper", help="unseen: targets exclude the context (context drawn from the rest of the split); paper: the paper's evaluation (context drawn from the task's pairs, scored on positions k..T-1, so context pairs are among the targets); all: all T pairs including the context.")
    split: str = opt("test", help="Split to evaluate on: test, val or train.")
    data: str | None = opt(None, help="Evaluate on this data instead of the training run's (same input dimension).")
    z_samples: int = opt(16, help="Latent samples per task; 0 uses the posterior mean.")
    aggregation: str = opt("auto", help="How latent samples make an accuracy: samples (the accuracy of each sample, averaged: the paper's evaluation), predictive (threshold the posterior-predictive mean probability), or auto (samples for the paper convention, predictive for the others).")
    per_type: bool = opt(True, help="Also report and plot accuracy per user type (the paper's per-label columns).")
    num_targets: int = opt(20, help="Pairs per evaluation task.")
    paper: bool = opt(True, help="Draw the paper's synthetic-benchmark numbers in the plot and table (synthetic data only).")
    device: str = opt("auto", help="Device: auto, cpu, cuda ...")
    threads: int = opt(1, help="CPU threads for torch (0: torch's default).")
    json: bool = opt(False, help="Print the results as JSON.")


@dataclass
class EmbedOptions:
    """``prefkit nppl embed``: a text preference task with several user types, embedded."""

    dataset: list[str] = opt(default_factory=list, help="Dataset(s): a registered name (name:config), a file, a save_to_disk directory or hf:ORG/NAME. Repeat or comma-separate. Default: the persona-tailoring BeaverTails mirror for --task length/label, hf:openbmb/UltraFeedback for uf-hh/uf-hht.", cli_type=list[str])
    split: str | None = opt(None, help="Split(s) of the dataset(s) to use (comma-separated; default: every split the persona mirror has / 'train').")
    data_dir: str | None = opt(None, help="Local mirror directory for named datasets (or PREFKIT_DATA_DIR).")
    task: str = opt("length", help="User types: length (A prefers the longer response, B the shorter), label (A the dataset's chosen, B its rejected), uf-hh (helpfulness vs honesty ratings), uf-hht (+ truthfulness).")
    embedder: str = opt("all-MiniLM-L6-v2", help="Embedder: a sentence-transformer (all-MiniLM-L6-v2 is bundled offline; st:NAME_OR_PATH) or hf:MODEL for a causal LM's last-token hidden state.")
    min_length_ratio: float = opt(1.2, help="length task: keep pairs whose longer response is at least this many times longer.")
    limit: int | None = opt(None, help="Use at most this many pairs (after building the task).")
    batch_size: int = opt(32, help="Texts per embedding batch.")
    max_length: int = opt(512, help="Most tokens per text for hf: embedders.")
    chunk_size: int = opt(256, help="Pairs per saved shard (an interrupted run resumes at the last shard).")
    seed: int = opt(0, help="Seed of the 80/10/10 train/val/test split.")
    device: str = opt("auto", help="Device: auto, cpu, cuda ...")


@dataclass
class DPOOptions:
    """``prefkit nppl dpo``: NP-DPO (a policy conditioned on the user's context) or plain DPO."""

    model: str = opt("HuggingFaceTB/SmolLM2-135M-Instruct", help="Base causal LM (hub id or local directory).")
    data: str = opt("", help="An embedding directory written by 'prefkit nppl embed' (its texts are the DPO pairs, its embeddings the context).")
    baseline: bool = opt(False, help="Train plain DPO with LoRA on all user types mixed (the core training layer) instead of NP-DPO.")
    steps: int = opt(200, help="Optimisation steps.")
    batch_size: int = opt(2, help="Tasks (users) per step.")
    num_targets: int = opt(10, help="Target pairs per task.")
    max_context: int = opt(7, help="Most context pairs of a training task.")
    lr: float = opt(1e-5, help="Learning rate.")
    beta: float = opt(0.05, help="DPO beta.")
    lora_r: int = opt(128, help="LoRA rank.")
    lora_alpha: int = opt(256, help="LoRA alpha.")
    lora_dropout: float = opt(0.1, help="LoRA dropout.")
    latent_dim: int = opt(256, help="Latent size (and context-encoder width).")
    max_length: int = opt(512, help="Most tokens of prompt + response (over it the prompt's content is cut from the left, its chat template kept, and the response keeps at least half).")
    eval_every: int = opt(50, help="Validate every N steps (DPO loss and implicit accuracy on the val split; the best checkpoint by validation loss is kept) and save a resume point.")
    val_pairs: int = opt(200, help="Most validation pairs per user type at each validation.")
    select: str = opt("best", help="Checkpoint to keep: best (lowest validation DPO loss) or last.")
    eval_contexts: str = opt("0,1,3,5,10", help="Context sizes for the implicit-reward accuracy after training ('' to skip).")
    eval_seeds: int = opt(1, help="Evaluation seeds.")
    eval_limit: int | None = opt(None, help="Evaluate on at most this many test pairs per user type.")
    seed: int = opt(0, help="Seed.")
    device: str = opt("auto", help="Device: auto, cpu, cuda ...")
