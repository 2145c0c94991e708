"""A tiny causal LM and tokenizer built at test time, so training tests run in seconds on a CPU.

Real checkpoints are far too slow to train in tests (even a 2-layer model with a
49k vocabulary spends ~11 s per step in its output layer). These helpers build:

* :func:`make_tiny_tokenizer` — a byte-level BPE tokenizer (vocabulary ≤ 1k)
  trained on a few hundred rows of real text (``../shared/data/persona`` when
  present, else built-in sentences), with special tokens and a ChatML-style chat
  template, so ``apply_chat_template`` works;
* :func:`make_tiny_model` — a 2-layer Llama (hidden size 64) saved together with
  that tokenizer: a normal Hugging Face model directory every prefkit code path
  (training, merging, the ``hf`` backend) can load offline.

Both take well under a second (the model's weights are seeded, so two calls
give identical models).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

__all__ = ["make_tiny_tokenizer", "make_tiny_model", "tiny_texts", "TINY_CHAT_TEMPLATE", "TINY_SPECIAL_TOKENS"]

#: ChatML-style template; ``{% generation %}`` markers let TRL build assistant masks.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TINY_SPECIAL_TOKENS = {"pad_token": "<|pad|>", "bos_token": "<|bos|>", "eos_token": "<|im_end|>",
                       "unk_token": "<|unk|>"}
_EXTRA_SPECIAL = ["<|im_start|>"]

_BUILTIN_TEXT = """\
The user is a student who wants short answers with a memorable example.
The user is a careful parent who prefers safe, practical advice.
How do I keep a sourdough starter alive while I travel for two weeks?
Feed it, put it in the fridge, and feed it again the day you get home.
What is a good way to remember the word "garrulous"?
Garrulous sounds like "gargle-us": someone who talks so much they seem to gargle words.
Can you explain what a preference pair is in one sentence?
Two answers to the same prompt where a person says which one they like better.
Write a haiku about autumn rain on a tin roof.
Drums on the tin roof, the maple lets go its leaves, the kettle answers.
Is it safe to mix bleach and vinegar for cleaning?
No. Mixing them releases chlorine gas; use one at a time and rinse between.
Summarize the plot of a heist movie without spoilers.
A crew with clashing skills plans one impossible job, and trust is the real vault.
Human: Give me a tip for learning to cook.
Assistant: Master one simple dish a week, and taste as you go.
Prompt: What is the capital of France?
Response: Paris is the capital of France.
"""


def tiny_texts(limit: int = 400) -> list[str]:
    """A few hundred rows of text to train the tiny tokenizer on.

    Reads prompts and responses of the persona-tailoring data in ``../shared/data``
    when it is there (raw Arrow, no ``datasets`` import), else built-in sentences.
    """
    texts: list[str] = []
    try:
        from .core import shared_data_dir

        root = shared_data_dir()
        if root is not None:
            import pyarrow as pa

            for name in ("persona-tailoring-BeaverTails/sft_train", "persona-tailoring-Mnemonic/sft_train"):
                d = root / "persona" / name
                files = sorted(d.glob("data-*.arrow")) if d.is_dir() else []
                for f in files:
                    with pa.memory_map(str(f)) as src:
                        table = pa.ipc.open_stream(src).read_all()
                    cols = [c for c in ("prompt", "chosen", "rejected", "chosen_persona_gold") if c in table.column_names]
                    for row in table.slice(0, limit // 2).select(cols).to_pylist():
                        texts.extend(str(v) for v in row.values() if v)
                if len(texts) >= limit:
                    break
    except Exception:  # any problem reading the shared data: fall back to the built-in text
        texts = []
    texts = [t[:2000] for t in texts[:limit]]
    builtin = [line for line in _BUILTIN_TEXT.splitlines() if line.strip()]
    return texts + builtin * (1 if texts else 8)


def make_tiny_tokenizer(path: str | Path | None = None, texts: Iterable[str] | None = None, *,
                        vocab_size: int = 1000, chat_template: str | None = TINY_CHAT_TEMPLATE):
    """Train a byte-level BPE tokenizer (vocabulary ≤ ``vocab_size``) and return it.

    ``path``: save it there too (``tokenizer.json`` + config with the chat template).
    ``chat_template=None`` builds a tokenizer *without* a chat template (to test the
    refusal of chat-format training on such models).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [TINY_SPECIAL_TOKENS["pad_token"], TINY_SPECIAL_TOKENS["bos_token"], TINY_SPECIAL_TOKENS["eos_token"],
                TINY_SPECIAL_TOKENS["unk_token"], *_EXTRA_SPECIAL]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts) if texts is not None else tiny_texts(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **TINY_SPECIAL_TOKENS,
                                   additional_special_tokens=list(_EXTRA_SPECIAL), model_max_length=2048)
    fast.padding_side = "right"
    if chat_template is not None:
        fast.chat_template = chat_template
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        fast.save_pretrained(str(path))
    return fast


def make_tiny_model(path: str | Path, *, tokenizer=None, texts: Iterable[str] | None = None, hidden_size: int = 64,
                    num_layers: int = 2, seed: int = 0, chat_template: str | None = TINY_CHAT_TEMPLATE) -> Path:
    """Build a 2-layer, hidden-64 Llama with the tiny tokenizer and save both to ``path``.

    Returns ``path``: a normal Hugging Face model directory (``config.json``,
    ``model.safetensors``, ``generation_config.json``, tokenizer files).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = tokenizer if tokenizer is not None else make_tiny_tokenizer(texts=texts, chat_template=chat_template)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config = GenerationConfig(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                               eos_token_id=tok.eos_token_id)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path
