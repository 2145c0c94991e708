"""The one prompt builder of the plugin: SFT, DPO, the reward model and generation all use it.

Community context is one line: ``r/<subreddit>`` (``--context subreddit``), the literal
``Reddit`` (``none``: the line stays, as in the reference), or ``r/<another subreddit of the
same subset>`` (``random-subreddit``, the paper's ablation; seeded per post).

Two formats (version :data:`TEMPLATE_VERSION`):

* ``text`` (base models; the reference's Tulu-like template, one spelling for every stage)::

      <|domain|>
      r/personalfinance
      <|user|>
      {title}
      {body}
      <|assistant|>
      {comment}<eos>

  The generation prompt ends after ``<|assistant|>`` and its newline; the eos token is the
  tokenizer's, added once by the trainer.
* ``chat`` (instruct models): one user message ``Community: r/personalfinance`` + blank
  line + the post, rendered by the model's own chat template; the comment is the
  assistant turn.

Lengths are in tokens (:class:`LengthPolicy`): the post is truncated (its end is cut), the
response is kept whole, and a pair whose response alone leaves no room is dropped and counted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Sequence

import prefkit

from .data import pair_priority

TEMPLATE_VERSION = "compred-prompt-v1"
NO_COMMUNITY = "Reddit"
FORMATS = ("text", "chat")
#: generation stops: any of the text template's tags (the comment is over when the model starts a new turn)
STOPS = ("<|",)


class Context(str, enum.Enum):
    """Which community the model is told about."""

    none = "none"
    subreddit = "subreddit"
    random_subreddit = "random-subreddit"


def parse_context(value: Any) -> Context:
    if isinstance(value, Context):
        return value
    try:
        return Context(str(value).strip().lower().replace("_", "-"))
    except ValueError:
        raise prefkit.UsageError(f"--context must be one of {', '.join(c.value for c in Context)} "
                                 f"(got {value!r})") from None


def check_format(value: Any) -> str:
    v = str(value).strip().lower()
    if v not in FORMATS:
        raise prefkit.UsageError(f"--format must be one of {', '.join(FORMATS)} (got {value!r})")
    return v


class CommunityLabeler:
    """The community line of each post for one context mode.

    ``random-subreddit`` needs the subset's subreddits (at least two): each post gets a
    different one, picked by a seeded hash of its ``post_id`` (so a post gets the same
    substitute at training and at inference, and every run with the same seed agrees).
    """

    def __init__(self, context: Context | str, subreddits: Sequence[str] = (), seed: int = 0):
        self.context = parse_context(context)
        self.subreddits = sorted(set(subreddits))
        self.seed = seed
        if self.context is Context.random_subreddit and len(self.subreddits) < 2:
            raise prefkit.UsageError(
                "--context random-subreddit needs at least two subreddits in the subset "
                f"(found {len(self.subreddits)}: {', '.join(self.subreddits) or 'none'})")

    def subreddit_for(self, subreddit: str, post_id: str) -> str | None:
        """The subreddit shown to the model (None: no community, the line says ``Reddit``)."""
        if self.context is Context.none:
            return None
        if self.context is Context.subreddit:
            return subreddit
        others = [s for s in self.subreddits if s != subreddit]
        return others[pair_priority(self.seed, post_id, "context", "") % len(others)]

    def line(self, subreddit: str, post_id: str) -> str:
        shown = self.subreddit_for(subreddit, post_id)
        return NO_COMMUNITY if shown is None else f"r/{shown}"


def text_prompt(community_line: str, post: str) -> str:
    """The text-format prompt (ends where the comment starts)."""
    return f"<|domain|>\n{community_line}\n<|user|>\n{post}\n<|assistant|>\n"


def chat_messages(community_line: str, post: str) -> list[dict[str, str]]:
    """The chat-format prompt: one user message."""
    return [{"role": "user", "content": f"Community: {community_line}\n\n{post}"}]


# ------------------------------------------------------------------------------------------------ lengths
@dataclass
class LengthPolicy:
    """Token limits shared by SFT, DPO, the reward model and generation.

    ``max_prompt_tokens``: the prompt (template + post) at most; ``max_length``: prompt +
    the longest response at most. The post is cut at its end to fit; the response is never
    cut; a response too long for ``max_length`` with at least ``min_post_tokens`` of post
    drops the example.
    """

    max_prompt_tokens: int = 512
    max_length: int = 1024
    min_post_tokens: int = 8
    counts: dict[str, int] = field(default_factory=lambda: {"examples": 0, "kept": 0, "post_truncated": 0,
                                                            "dropped_response_too_long": 0})

    def __post_init__(self) -> None:
        if self.max_prompt_tokens < 1 or self.max_length < 1:
            raise prefkit.UsageError("--max-prompt-tokens and --max-length must be at least 1")
        if self.max_prompt_tokens > self.max_length:
            raise prefkit.UsageError(f"--max-prompt-tokens ({self.max_prompt_tokens}) cannot exceed --max-length "
                                     f"({self.max_length})")


def n_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def cut_tokens(tokenizer: Any, text: str, budget: int) -> str:
    """The longest start of ``text`` with at most ``budget`` tokens (cut at a token boundary)."""
    if budget <= 0:
        return ""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        if len(offsets) <= budget:
            return text
        return text[:offsets[budget][0]].rstrip()
    except (NotImplementedError, TypeError, KeyError):  # slow tokenizers have no offsets
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= budget else tokenizer.decode(ids[:budget]).rstrip()


# ------------------------------------------------------------------------------------------------ builder
class PromptBuilder:
    """Builds every stage's rows from posts and pairs, in one format with one length policy.

    ``tokenizer`` is needed for the length policy and for the chat format's prompt size
    (the chat template is applied by the trainer / backend, the builder only measures it).
    """

    def __init__(self, fmt: str, labeler: CommunityLabeler, tokenizer: Any = None,
                 policy: LengthPolicy | None = None):
        self.fmt = check_format(fmt)
        self.labeler = labeler
        self.tokenizer = tokenizer
        self.policy = policy or LengthPolicy()
        self._overhead: int | None = None

    # ---- the prompt itself
    def prompt(self, subreddit: str, post_id: str, post: str) -> str | list[dict[str, str]]:
        line = self.labeler.line(subreddit, post_id)
        return text_prompt(line, post) if self.fmt == "text" else chat_messages(line, post)

    def _prompt_tokens(self, prompt: str | list[dict[str, str]]) -> int:
        tok = self.tokenizer
        if isinstance(prompt, str):
            return n_tokens(tok, prompt)
        ids = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)

    def fit_post(self, subreddit: str, post_id: str, post: str, response_tokens: int = 0) -> str | None:
        """The post cut to the policy's budget given the longest response; None if it cannot fit."""
        p = self.policy
        p.counts["examples"] += 1
        if self.tokenizer is None:
            p.counts["kept"] += 1
            return post
        overhead = self._prompt_tokens(self.prompt(subreddit, post_id, ""))
        room = min(p.max_prompt_tokens, p.max_length - response_tokens) - overhead
        if room < p.min_post_tokens:
            p.counts["dropped_response_too_long"] += 1
            return None
        if n_tokens(self.tokenizer, post) <= room:
            p.counts["kept"] += 1
            return post
        cut = cut_tokens(self.tokenizer, post, room)
        # a cut can re-merge into more tokens once inside the template: shrink until the whole prompt fits
        while cut and self._prompt_tokens(self.prompt(subreddit, post_id, cut)) > overhead + room:
            room -= 1
            cut = cut_tokens(self.tokenizer, post, room)
        p.counts["kept"] += 1
        p.counts["post_truncated"] += 1
        return cut

    def _response_tokens(self, *responses: str) -> int:
        if self.tokenizer is None:
            return 0
        return max(n_tokens(self.tokenizer, r) for r in responses) + 1  # + the eos token

    # ---- stage rows
    def _base(self, item: dict[str, Any], post: str) -> dict[str, Any]:
        return {"prompt": self.prompt(item["subreddit"], item["post_id"], post), "post_id": item["post_id"],
                "subreddit": item["subreddit"],
                "context_subreddit": self.labeler.subreddit_for(item["subreddit"], item["post_id"])}

    def sft_rows(self, pairs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """SFT on the preferred comment of each pair: ``prompt`` + ``completion``."""
        out = []
        for it in pairs:
            post = self.fit_post(it["subreddit"], it["post_id"], it["post"], self._response_tokens(it["chosen"]))
            if post is not None:
                out.append({**self._base(it, post), "completion": self._response(it["chosen"])})
        return out

    def pair_rows(self, pairs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """DPO / reward-model rows: ``prompt`` + ``chosen`` + ``rejected`` (same prompt for both)."""
        out = []
        for it in pairs:
            post = self.fit_post(it["subreddit"], it["post_id"], it["post"],
                                 self._response_tokens(it["chosen"], it["rejected"]))
            if post is not None:
                out.append({**self._base(it, post), "chosen": self._response(it["chosen"]),
                            "rejected": self._response(it["rejected"]), "pair_id": it.get("pair_id")})
        return out

    def generation_prompt(self, post: dict[str, Any]) -> dict[str, Any] | None:
        """The prompt of one test post (the post cut to ``max_prompt_tokens``)."""
        text = self.fit_post(post["subreddit"], post["post_id"], post["post"], 0)
        return None if text is None else self._base(post, text)

    def _response(self, text: str) -> str | list[dict[str, str]]:
        return text if self.fmt == "text" else [{"role": "assistant", "content": text}]


def describe(fmt: str) -> dict[str, Any]:
    """What a run records about its prompts."""
    return {"template_version": TEMPLATE_VERSION, "format": fmt,
            "example": text_prompt("r/SUBREDDIT", "TITLE\nBODY") if fmt == "text"
            else chat_messages("r/SUBREDDIT", "TITLE\nBODY")}
