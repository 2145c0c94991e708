"""Text tasks (length / label / UltraFeedback HH, HHT), embedders and the embedding path end to end."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from prefkit.data import PreferenceRecord
from prefkit_nppl.text import (TASK_TYPES, build_rows, get_embedder, label_rows, length_rows, ultrafeedback_rows)

from .conftest import fabricated_preferences


def rec(i, chosen, rejected, prompt="Q?"):
    return PreferenceRecord(row_id=str(i), prompt=[{"role": "user", "content": prompt}],
                            chosen=[{"role": "assistant", "content": chosen}],
                            rejected=[{"role": "assistant", "content": rejected}], source="t")


def test_length_rule_and_ratio_filter():
    recs = [rec(0, "a" * 100, "b" * 50), rec(1, "c" * 10, "d" * 30), rec(2, "e" * 100, "f" * 95),
            rec(3, "g" * 40, "h" * 40)]
    rows = length_rows(recs, min_ratio=1.2, seed=0)
    assert [r["row_id"] for r in rows] == ["t:0", "t:1"]   # near-equal lengths are dropped
    for r in rows:
        b_longer = len(r["response_b"]) > len(r["response_a"])
        assert r["choices"] == [int(b_longer), int(not b_longer)]   # longer / shorter user types
    # the order inside a pair is randomised, so b is not always the dataset's chosen
    many = length_rows([rec(i, "x" * (20 + i), "y" * 5) for i in range(40)], seed=0)
    assert 5 < sum(r["response_b"].startswith("x") for r in many) < 35


def test_label_rule():
    rows = label_rows([rec(i, f"good {i}", f"bad {i}") for i in range(30)], seed=1)
    for r in rows:
        b_is_chosen = r["response_b"].startswith("good")
        assert r["choices"] == [int(b_is_chosen), int(not b_is_chosen)]


def uf_row(prompt, completions):
    return {"instruction": prompt, "completions": [
        {"response": text, "annotations": {a: {"Rating": str(v)} for a, v in zip(
            ("helpfulness", "honesty", "truthfulness", "instruction_following"), ratings)}}
        for text, ratings in completions]}


def test_ultrafeedback_hh_and_hht_builders():
    rows = [
        uf_row("p1", [("A", (5, 2, 4, 3)), ("B", (3, 4, 2, 3)), ("C", (4, 4, 3, 3)), ("D", (5, 1, 1, 1))]),
        uf_row("p2", [("E", (2, 2, 2, 2)), ("F", (3, 3, 3, 3))]),                  # types agree: dropped
        {"instruction": "p3", "completions": [{"response": "G", "annotations": {"helpfulness": {"Rating": "N/A"}}},
                                              {"response": "H", "annotations": {}}]},  # unusable ratings
    ]
    hh = ultrafeedback_rows(rows, ["helpfulness", "honesty"], seed=0)
    pairs = {frozenset((r["response_a"], r["response_b"])): r for r in hh}
    # A-B conflict (help A, honesty B); B-C tie on honesty: dropped; A-D tie on helpfulness: dropped
    assert frozenset("AB") in pairs and frozenset("BC") not in pairs and frozenset("AD") not in pairs
    assert all(frozenset(p) not in pairs for p in ("EF", "GH"))
    for r in hh:
        ratings = {"A": (5, 2), "B": (3, 4), "C": (4, 4), "D": (5, 1)}
        ra, rb = ratings[r["response_a"]], ratings[r["response_b"]]
        assert r["choices"] == [int(rb[0] > ra[0]), int(rb[1] > ra[1])]
        assert len(set(r["choices"])) == 2
    hht = ultrafeedback_rows(rows, ["helpfulness", "honesty", "truthfulness"], seed=0)
    assert all(len(r["choices"]) == 3 and len(set(r["choices"])) == 2 for r in hht)
    assert {frozenset((r["response_a"], r["response_b"])) for r in hht} >= {frozenset("AB")}


def test_ultrafeedback_drops_non_integer_ratings_and_pairs_per_prompt_text():
    """As the reference: a completion with a non-integer rating on ANY attribute (here only
    instruction_following is "N/A") is dropped, and two rows with the same prompt text pool
    their completions before pairs are formed."""
    bad = {"response": "X", "annotations": {"helpfulness": {"Rating": "5"}, "honesty": {"Rating": "1"},
                                            "truthfulness": {"Rating": "3"}, "instruction_following": {"Rating": "N/A"}}}
    half = {"response": "Y", "annotations": {"helpfulness": {"Rating": "4.5"}, "honesty": {"Rating": "1"}}}
    rows = [uf_row("same prompt", [("A", (5, 2, 4, 3))]),
            uf_row("same prompt", [("B", (3, 4, 2, 3))]),                    # another row, the same text
            {"instruction": "same prompt", "completions": [bad, half]},
            uf_row("other", [("C", (1, 5, 1, 1))])]
    stats = {}
    hh = ultrafeedback_rows(rows, ["helpfulness", "honesty"], seed=0, stats=stats)
    pairs = {frozenset((r["response_a"], r["response_b"])) for r in hh}
    assert pairs == {frozenset("AB")}                     # A, B pooled; X, Y dropped; C alone
    assert stats == {"completions_dropped": 2, "prompts": 2}
    from prefkit_nppl.text import _rating

    assert [_rating({"annotations": {"h": {"Rating": v}}}, "h") for v in ("4", 3, 2.0, "N/A", "4.5", None)] == \
        [4, 3, 2, None, None, None]


def test_build_rows_from_a_file(tmp_path):
    f = tmp_path / "prefs.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in fabricated_preferences(60)) + "\n")
    opts = SimpleNamespace(task="length", dataset=[str(f)], split=None, data_dir=None, seed=0, limit=None,
                           min_length_ratio=1.2)
    rows = build_rows(opts)
    assert len(rows) == 60 and len({r["row_id"] for r in rows}) == 60
    uf = tmp_path / "uf.jsonl"
    uf.write_text(json.dumps(uf_row("p", [("A", (5, 2, 4, 3)), ("B", (3, 4, 2, 3))])) + "\n")
    with pytest.raises(Exception, match="at least 20"):
        build_rows(SimpleNamespace(**{**vars(opts), "task": "uf-hh", "dataset": [str(uf)]}))
    with pytest.raises(Exception, match="unknown --task"):
        build_rows(SimpleNamespace(**{**vars(opts), "task": "nope"}))


def test_causal_lm_embedder(tiny_model):
    emb = get_embedder(f"hf:{tiny_model}", "cpu", max_length=64)
    e = emb.embed(["Q1", "Q2", "Q1"], ["short", "a longer answer " * 5, "short"], batch_size=2)
    assert e.shape == (3, emb.dim) and torch.isfinite(e).all()
    assert torch.allclose(e[0], e[2], atol=1e-5) and not torch.allclose(e[0], e[1])


def _state_at_eos(emb, text):
    ids = emb.tok(text, add_special_tokens=False)["input_ids"] + [emb.tok.eos_token_id]
    with torch.no_grad():
        h = emb.model(input_ids=torch.tensor([ids])).last_hidden_state
    return h[0, -1], ids


def test_causal_lm_embedding_is_the_state_at_an_appended_eos(tiny_model):
    emb = get_embedder(f"hf:{tiny_model}", "cpu", max_length=128)
    text = emb.text("Tell me about tea?", "Tea is a drink.")
    assert text.startswith("<|im_start|>user")                           # the chat template
    want, ids = _state_at_eos(emb, text)
    assert ids.count(emb.tok.bos_token_id) <= 1
    # batched with a longer text (right padding) the state is the same
    e = emb.embed(["Tell me about tea?", "x"], ["Tea is a drink.", "y " * 40], batch_size=2)
    assert torch.allclose(e[0], want, atol=1e-4)


def test_causal_lm_without_chat_template_starts_with_one_bos(tiny_model_no_template):
    emb = get_embedder(f"hf:{tiny_model_no_template}", "cpu", max_length=128)
    assert not getattr(emb.tok, "chat_template", None)
    ids = emb.token_ids("Tell me about tea?", "Tea is a drink.")
    assert ids[0] == emb.tok.bos_token_id and ids.count(emb.tok.bos_token_id) == 1
    assert ids[-1] == emb.tok.eos_token_id
    want, _ = _state_at_eos(emb, emb.text("Tell me about tea?", "Tea is a drink."))
    assert torch.allclose(emb.embed(["Tell me about tea?"], ["Tea is a drink."])[0], want, atol=1e-4)


def test_causal_lm_refuses_texts_over_the_limit_instead_of_truncating(tiny_model):
    emb = get_embedder(f"hf:{tiny_model}", "cpu", max_length=24)
    vectors, kept, cut = emb.encode(["Q", "Q"], ["ok", "a much longer answer " * 20])
    assert kept.tolist() == [True, False] and not cut.any()
    assert torch.all(vectors[1] == 0)
    with pytest.raises(Exception, match="longer than the embedder's limit"):
        emb.embed(["Q"], ["a much longer answer " * 20])


def test_embed_drops_and_counts_pairs_over_the_limit(tiny_model, tmp_path, capsys):
    from prefkit.runs import Run
    from prefkit_nppl.config import EmbedOptions
    from prefkit_nppl.data import PairData
    from prefkit_nppl.text import build_and_embed, pair_rows

    rows = fabricated_preferences(40)
    for r in rows[:5]:   # five pairs whose long response is far over the limit
        r["chosen"] = r["chosen"] + " padding words" * 80
    f = tmp_path / "prefs.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    opts = EmbedOptions(dataset=[str(f)], embedder=f"hf:{tiny_model}", max_length=256, chunk_size=16)
    with Run.open("nppl embed", output_dir=tmp_path / "emb") as run:
        stats = build_and_embed(opts, run)
    assert stats["pairs_dropped_too_long"] == 5 and stats["n"] == 35
    assert "dropped 5 of 40 pairs" in " ".join(capsys.readouterr().err.split())
    data, texts = PairData.load(tmp_path / "emb"), pair_rows(tmp_path / "emb")
    assert data.n == len(texts) == 35
    assert all("padding words" not in t["response_a"] + t["response_b"] for t in texts)
    # the tensors line up with the text rows: re-embed one kept pair
    emb = get_embedder(f"hf:{tiny_model}", "cpu", max_length=256)
    i = 7
    e = emb.embed([texts[i]["prompt"]] * 2, [texts[i]["response_a"], texts[i]["response_b"]])
    assert torch.allclose(data.option_a[i], e[0], atol=1e-4) and torch.allclose(data.option_b[i], e[1], atol=1e-4)


def test_sentence_transformer_truncation_is_counted():
    from prefkit_nppl.text import SentenceTransformerEmbedder

    class FakeST:
        max_seq_length = 8

        def tokenizer(self, texts, add_special_tokens=True, truncation=False):
            return {"input_ids": [t.split() for t in texts]}

        def encode(self, texts, **kw):
            return torch.ones(len(texts), 3)

    emb = SentenceTransformerEmbedder.__new__(SentenceTransformerEmbedder)
    emb.model, emb.name, emb.dim, emb.limit = FakeST(), "fake", 3, 8
    emb.model.tokenizer = FakeST.tokenizer.__get__(emb.model)
    _, kept, cut = emb.encode(["q", "q"], ["two words", "many " * 20])
    assert kept.all() and cut.tolist() == [False, True]


@pytest.mark.slow
def test_bundled_minilm_embedder_offline():
    emb = get_embedder("all-MiniLM-L6-v2", "cpu")
    e = emb.embed(["What is tea?", "What is tea?"], ["A drink.", "A hot drink made from leaves."])
    assert e.shape == (2, 384) and emb.dim == 384


def test_unknown_embedder():
    from prefkit.errors import UsageError

    with pytest.raises(UsageError, match="unknown --embedder"):
        get_embedder("no-such-embedder")


@pytest.mark.slow
def test_embed_and_train_end_to_end(prefkit_cli, preference_file, tiny_model, tmp_path):
    out = tmp_path / "emb"
    args = ["nppl", "embed", "--dataset", str(preference_file), "--embedder", f"hf:{tiny_model}",
            "--chunk-size", "50", "-o", str(out)]
    r = prefkit_cli(*args, "--json")
    assert r.exit_code == 0, r.output
    info = r.json()
    assert info["n"] == 120 and info["user_types"] == TASK_TYPES["length"] and info["conflict_rate"] == 1.0
    rows = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 120 and {"prompt", "response_a", "response_b", "choices", "split"} <= set(rows[0])
    assert not (out / "shards").exists()
    r = prefkit_cli(*args)                                   # a second run resumes: nothing to do
    assert r.exit_code == 0 and "already embedded" in " ".join(r.stderr.split())

    run = tmp_path / "run"
    r = prefkit_cli("nppl", "train", "--model", "nppl", "--data", str(out), "--steps", "6", "--eval-every", "3",
                    "--num-targets", "4", "--max-context", "3", "--batch-size", "8", "--hidden-dim", "32",
                    "--latent-dim", "16", "-o", str(run), "--json")
    assert r.exit_code == 0, r.output
    cfg = r.json()["model_config"]
    assert cfg["context_input"] == "linear"        # embeddings: linear context input layer
    assert cfg["sample_latents"] is False          # and a deterministic latent (the paper's text setup)
    r = prefkit_cli("nppl", "eval", str(run), "--contexts", "0,2", "--seeds", "1", "--num-targets", "4",
                    "--json", "-o", str(tmp_path / "ev"))
    assert r.exit_code == 0, r.output
    assert "paper" not in r.json().get("gap_to_paper", {})
