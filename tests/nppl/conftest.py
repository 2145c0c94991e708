"""Shared helpers of the NPPL plugin tests."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models: one torch thread is fastest and keeps CI steady on a shared machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def fabricated_preferences(n: int = 120, seed: int = 0) -> list[dict]:
    """Preference rows whose two responses differ clearly in length (chosen is sometimes the longer)."""
    import random

    rng = random.Random(seed)
    topics = ["tea", "rain", "maps", "bread", "chess", "birds", "clocks", "rivers", "glass", "music"]
    rows = []
    for i in range(n):
        t = topics[i % len(topics)]
        short = f"Short answer about {t} number {i}."
        long = " ".join([f"A much longer and more detailed answer about {t} number {i}, with context."] * rng.randint(3, 5))
        chosen, rejected = (long, short) if rng.random() < 0.5 else (short, long)
        rows.append({"id": f"r{i}", "prompt": f"Tell me about {t} ({i})?", "chosen": chosen, "rejected": rejected})
    return rows


@pytest.fixture
def preference_file(tmp_path):
    p = tmp_path / "prefs.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in fabricated_preferences()) + "\n")
    return p
