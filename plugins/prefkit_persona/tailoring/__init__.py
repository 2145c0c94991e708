"""Persona tailoring (PT): train and run models that tailor their answers to a user persona.

The method of "Whose Boat Does it Float?" (Balepur et al.), section "persona tailoring":
preference data is augmented with the persona of a user who would prefer each
response (inferred with abductive reasoning), and SFT/DPO are run on prompts
that carry that persona. At inference the model is given a persona (the gold
or a retrieved one, a generic system persona, or none) and judged against a
baseline for response quality and personalization.

Modules (all kept light at import time; heavy work lives inside functions):

* :mod:`.formats`  pure logic: training/inference types, text and chat formats,
  SFT/DPO row building, few-shot prompts, first-person rewriting, Mnemonic seeds.
* :mod:`.data`     loading the ``persona-tailoring`` splits through ``prefkit.load_records``.
* :mod:`.outputs`  generation runs: cleaning model text, importing the paper's outputs.
* :mod:`.methods`  fewshot / sft / dpo (one stage or chained) / generate through the core training
  and backend layers.
* :mod:`.presets`  the training presets ``persona-tailoring`` and ``persona-tailoring-paper``.
* :mod:`.judging`  pairwise judging of two generation runs (quality, personalization, ΔPQ).
* :mod:`.cli`      the ``prefkit tailor ...`` commands.
"""
