"""NP-DPO on the tiny model: FiLM identity at init, training, save/load, generation, baseline DPO."""

from __future__ import annotations

import json

import pytest
import torch

from prefkit_nppl.data import TaskBatch


@pytest.fixture(scope="module")
def emb_dir(tiny_model, tmp_path_factory):
    """A length-task embedding directory over fabricated pairs, embedded with the tiny model."""
    from prefkit.runs import Run
    from prefkit_nppl.config import EmbedOptions
    from prefkit_nppl.text import build_and_embed

    from .conftest import fabricated_preferences

    d = tmp_path_factory.mktemp("np-dpo")
    f = d / "prefs.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in fabricated_preferences(120)) + "\n")
    opts = EmbedOptions(dataset=[str(f)], embedder=f"hf:{tiny_model}", max_length=256)
    with Run.open("nppl embed", output_dir=d / "emb") as run:
        build_and_embed(opts, run)
    return d / "emb"


TINY = ["--steps", "3", "--batch-size", "2", "--num-targets", "4", "--max-context", "3", "--lora-r", "4",
        "--lora-alpha", "8", "--latent-dim", "16", "--max-length", "48", "--lr", "5e-3", "--eval-contexts", "0,2"]


def test_film_starts_as_identity(tiny_model, emb_dir):
    from prefkit_nppl.data import PairData
    from prefkit_nppl.np_dpo import Scorer, build_policy, decoder_layers

    data = PairData.load(emb_dir)
    cfg = {"model": str(tiny_model), "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "latent_dim": 16,
           "input_dim": data.input_dim}
    tok, policy = build_policy(cfg, torch.device("cpu"))
    policy.eval()
    assert len(policy.films) == len(decoder_layers(policy.lm)) == 2
    s = Scorer(tok, policy, policy.lm, 48, "cpu")
    prompts, resp = ["Tell me about tea?"] * 2, ["Short.", "A longer answer about tea."]
    with torch.no_grad():
        z = torch.randn(2, 16)
        with_z = s.policy_logps(prompts, resp, z)
        ref = s.ref_logps(prompts, resp)
        # LoRA starts at zero and FiLM at the identity: the policy is the base model for any latent
        assert torch.allclose(with_z, ref, atol=1e-4)
        for film in policy.films:
            torch.nn.init.normal_(film.beta.weight, std=0.5)
        assert not torch.allclose(s.policy_logps(prompts, resp, z), ref, atol=1e-3)
        assert torch.allclose(s.policy_logps(prompts, resp, None), ref, atol=1e-4)   # no latent: no FiLM


def test_encode_pairs_masks_only_the_response(tiny_tokenizer):
    from prefkit_nppl.np_dpo import encode_pairs

    ids, att, resp = encode_pairs(tiny_tokenizer, ["hi", "a longer prompt here"], ["ok", "yes indeed"], 64)
    assert ids.shape == att.shape == resp.shape
    for i, r in enumerate(["ok", "yes indeed"]):
        n = len(tiny_tokenizer(r + tiny_tokenizer.eos_token, add_special_tokens=False)["input_ids"])
        assert int(resp[i].sum()) == n and bool(resp[i, att[i].sum() - 1])
    ids, att, resp = encode_pairs(tiny_tokenizer, ["p " * 100], ["r " * 100], 32)
    assert ids.shape[1] <= 32 and resp.sum() > 0


def test_long_prompts_keep_the_chat_template(tiny_tokenizer):
    from prefkit_nppl.np_dpo import encode_pairs, fit_prompt, prompt_text

    tok = tiny_tokenizer
    head = tok("<|im_start|>user\n", add_special_tokens=False)["input_ids"]
    tail = tok(prompt_text(tok, "x").split("x", 1)[1], add_special_tokens=False)["input_ids"]
    long_prompt = "please answer this " * 60 + "final question?"
    ids = fit_prompt(tok, long_prompt, 40)
    assert len(ids) <= 40
    assert ids[: len(head)] == head and ids[-len(tail):] == tail           # header and assistant opening intact
    assert "question?" in tok.decode(ids)                                  # the prompt's end is kept
    ids, att, resp = encode_pairs(tok, [long_prompt], ["r " * 100], 48)
    n = int(att[0].sum())
    assert n <= 48 and int(resp[0].sum()) >= 24                            # the response keeps half the budget
    seq = ids[0, :n].tolist()
    prompt_part = seq[: n - int(resp[0].sum())]
    assert prompt_part[: len(head)] == head and prompt_part[-len(tail):] == tail


def test_log_probs_without_a_full_vocabulary_log_softmax(tiny_model, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefkit_nppl.np_dpo import encode_pairs, sequence_logps, token_logps

    torch.manual_seed(0)
    logits = torch.randn(2, 7, 50)
    tgt = torch.randint(50, (2, 7))
    ref = torch.gather(torch.log_softmax(logits, -1), 2, tgt.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(token_logps(logits, tgt, chunk=3), ref, atol=1e-5)
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    lm = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()
    enc = encode_pairs(tok, ["hi", "a longer prompt"], ["ok then", "yes indeed, more"], 64)
    with torch.no_grad():
        full = lm(input_ids=enc[0], attention_mask=enc[1]).logits[:, :-1].float()
        want = (torch.gather(torch.log_softmax(full, -1), 2, enc[0][:, 1:].unsqueeze(-1)).squeeze(-1)
                * enc[2][:, 1:]).sum(-1)

        def no_log_softmax(*a, **k):
            raise AssertionError("full-vocabulary log_softmax materialised")

        monkeypatch.setattr(torch, "log_softmax", no_log_softmax)
        monkeypatch.setattr(torch.nn.functional, "log_softmax", no_log_softmax)
        got = sequence_logps(lm, *enc, chunk=4)
    assert torch.allclose(got, want, atol=1e-4)


def _dpo_opts(tiny_model, emb_dir, **kw):
    from prefkit_nppl.config import DPOOptions

    base = dict(model=str(tiny_model), data=str(emb_dir), steps=4, batch_size=2, num_targets=4, max_context=3,
                lora_r=4, lora_alpha=8, lora_dropout=0.1, latent_dim=16, max_length=96, lr=5e-3, eval_every=2,
                val_pairs=8, eval_contexts="", select="last")
    base.update(kw)
    return DPOOptions(**base)


def test_np_dpo_validates_keeps_best_and_resumes_exactly(tiny_model, emb_dir, tmp_path):
    from safetensors.torch import load_file

    from prefkit.runs import Run
    from prefkit_nppl.np_dpo import POLICY_FILE, RESUME_FILE, load_text_pairs, train_np_dpo

    data, rows = load_text_pairs(str(emb_dir))
    dev = torch.device("cpu")
    full = Run.open("nppl dpo", output_dir=tmp_path / "full")
    m, _ = train_np_dpo(_dpo_opts(tiny_model, emb_dir), full, data, rows, dev)
    logged = full.results()
    vals = [r for r in logged if "val_loss" in r]
    assert [r["step"] for r in vals] == [2, 4] and all(0 <= r["val_accuracy"] <= 1 and r["val_pairs"] > 0 for r in vals)
    assert m["selection_split"] == "val" and m["kept_step"] == 4 and not (tmp_path / "full" / RESUME_FILE).exists()

    part = Run.open("nppl dpo", output_dir=tmp_path / "part")

    class Stop(Exception):
        pass

    real_append = part.append

    def append(rec, key=None):
        if key == "step-000003":
            raise Stop
        return real_append(rec, key=key)

    part.append = append
    with pytest.raises(Stop):
        train_np_dpo(_dpo_opts(tiny_model, emb_dir), part, data, rows, dev)
    assert (tmp_path / "part" / RESUME_FILE).exists()
    part = Run.open("nppl dpo", output_dir=tmp_path / "part")
    m2, _ = train_np_dpo(_dpo_opts(tiny_model, emb_dir), part, data, rows, dev)
    assert m2["resumed_at_step"] == 2
    a = load_file(str(tmp_path / "full" / POLICY_FILE))
    b = load_file(str(tmp_path / "part" / POLICY_FILE))
    assert set(a) == set(b) and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)

    # --select best keeps the checkpoint of the lowest validation loss
    best = Run.open("nppl dpo", output_dir=tmp_path / "best")
    m3, _ = train_np_dpo(_dpo_opts(tiny_model, emb_dir, select="best"), best, data, rows, dev)
    vals = {r["step"]: r["val_loss"] for r in best.results() if "val_loss" in r}
    assert m3["kept_step"] == min(vals, key=vals.get) and m3["best_val_loss"] == pytest.approx(min(vals.values()))


@pytest.mark.slow
def test_np_dpo_train_save_load_generate(prefkit_cli, tiny_model, emb_dir, tmp_path):
    from prefkit_nppl.data import PairData, eval_batches
    from prefkit_nppl.np_dpo import POLICY_FILE, Scorer, load_policy, _texts, load_text_pairs

    out = tmp_path / "np"
    r = prefkit_cli("nppl", "dpo", "--model", str(tiny_model), "--data", str(emb_dir), *TINY, "-o", str(out), "--json")
    assert r.exit_code == 0, r.output
    m = r.json()
    assert m["kind"] == "np-dpo" and (out / POLICY_FILE).exists()
    assert set(m["implicit_accuracy"]) == {"0", "2"} and {"longer", "shorter", "all"} <= set(m["implicit_accuracy"]["0"])
    steps = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines() if '"step"' in l]
    assert len(steps) == 3 and all("loss" in s for s in steps)
    r = prefkit_cli("nppl", "dpo", "--model", str(tiny_model), "--data", str(emb_dir), *TINY, "-o", str(out))
    assert r.exit_code == 0 and "already trained" in " ".join(r.stderr.split())   # resumes: nothing redone

    # the saved LoRA + FiLM + encoder reproduce the trained policy's log-probs
    tok, policy, cfg = load_policy(out, torch.device("cpu"))
    assert cfg["beta"] == 0.05 and cfg["embedder"].startswith("hf:")
    film_moved = any(not torch.allclose(f.gamma.bias, torch.ones_like(f.gamma.bias)) for f in policy.films)
    assert film_moved
    data, rows = load_text_pairs(str(emb_dir))
    b = eval_batches(data, "test", 2, "unseen", 0, num_targets=4)[0]
    z = policy.latent(b)
    assert z.shape == (b.pairs_t.shape[0], 16) and torch.isfinite(z).all()
    tok2, policy2, _ = load_policy(out, torch.device("cpu"))
    prompts, chosen, _ = _texts(rows, b)
    zz = z.repeat_interleave(4, dim=0)
    with torch.no_grad():
        a = Scorer(tok, policy, policy.lm, 48, "cpu").policy_logps(prompts, chosen, zz)
        c = Scorer(tok2, policy2, policy2.lm, 48, "cpu").policy_logps(prompts, chosen, zz)
    assert torch.allclose(a, c, atol=1e-4)

    # generation conditioned on a context file (texts: embedded with the run's embedder)
    ctx = tmp_path / "ctx.jsonl"
    ctx.write_text("\n".join(json.dumps({"prompt": rw["prompt"], "chosen": rw["response_a"], "rejected": rw["response_b"]})
                             for rw in rows[:3]) + "\n")
    r = prefkit_cli("nppl", "generate", str(out), "--context", str(ctx), "-p", "Tell me about tea?",
                    "--max-new-tokens", "8", "--json")
    assert r.exit_code == 0, r.output
    gen = r.json()
    assert len(gen) == 1 and gen[0]["prompt"] == "Tell me about tea?" and isinstance(gen[0]["response"], str)
    # no context (z = 0) also works; a bad context file is one clear error
    r = prefkit_cli("nppl", "generate", str(out), "-p", "hi", "--max-new-tokens", "4", "--json")
    assert r.exit_code == 0, r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x"}) + "\n")
    r = prefkit_cli("nppl", "generate", str(out), "--context", str(bad), "-p", "hi")
    assert r.exit_code == 2 and "needs prompt, chosen and rejected" in " ".join(r.stderr.split())

    # nppl eval on an NP-DPO run: implicit-reward accuracy per user type
    r = prefkit_cli("nppl", "eval", str(out), "--contexts", "0,1", "--seeds", "1", "--json", "-o", str(tmp_path / "ev"))
    assert r.exit_code == 0, r.output
    assert {"np-dpo: longer", "np-dpo: shorter"} <= set(r.json()["summary"])
    ev_args = ["nppl", "eval", str(out), "--contexts", "0,1", "--seeds", "1", "--json", "-o", str(tmp_path / "ev")]
    lines = (tmp_path / "ev" / "results.jsonl").read_text().splitlines()
    again = prefkit_cli(*ev_args)                               # resumes: nothing computed twice
    assert again.exit_code == 0 and (tmp_path / "ev" / "results.jsonl").read_text().splitlines() == lines
    assert again.json()["summary"] == r.json()["summary"]
    # retrain into the same directory: the same evaluation run scores the new checkpoint, not its old cells
    old = json.loads(lines[0])["checkpoint"]
    t = prefkit_cli("nppl", "dpo", "--model", str(tiny_model), "--data", str(emb_dir), *TINY, "--lr", "2e-2",
                    "--fresh", "-o", str(out))
    assert t.exit_code == 0, t.output
    r3 = prefkit_cli(*ev_args)
    assert r3.exit_code == 0, r3.output
    new_rows = [json.loads(l) for l in (tmp_path / "ev" / "results.jsonl").read_text().splitlines()[len(lines):]]
    assert new_rows and all(x["checkpoint"] != old for x in new_rows)


@pytest.mark.slow
def test_dpo_baseline_through_the_core_training_layer(prefkit_cli, tiny_model, emb_dir, tmp_path):
    pytest.importorskip("prefkit.training")
    out = tmp_path / "base"
    r = prefkit_cli("nppl", "dpo", "--baseline", "--model", str(tiny_model), "--data", str(emb_dir),
                    "--steps", "2", "--batch-size", "2", "--num-targets", "4", "--lora-r", "4", "--lora-alpha", "8",
                    "--max-length", "48", "--eval-contexts", "0,2", "--lr", "1e-3", "-o", str(out), "--json")
    assert r.exit_code == 0, r.output
    m = r.json()
    assert m["kind"] == "dpo-baseline" and m["adapter_dir"]
    acc = m["implicit_accuracy"]
    # the baseline ignores the context: its accuracy does not depend on the context size
    assert acc["0"]["all"] == pytest.approx(acc["2"]["all"], abs=0.26)


def test_dpo_needs_an_embedding_directory(prefkit_cli, tmp_path):
    r = prefkit_cli("nppl", "dpo", "-o", str(tmp_path / "x"))
    assert r.exit_code == 2 and "--data is required" in " ".join(r.stderr.split())
