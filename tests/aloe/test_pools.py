"""Persona pools: the shipped files decoded correctly, validation, pairing into personas, and pool growth
(near-duplicates rejected at the threshold, the pool embedded once, saturation, resume)."""

from __future__ import annotations

import json
import re
import zlib

import numpy as np
import pytest

import prefkit
from prefkit.testing import MockBackend, cli

from prefkit_aloe import pools
from prefkit_aloe.pools import GrowConfig, Persona, grow_pool


# ----------------------------------------------------------------------------- shipped pools
def test_the_shipped_pools_decode_to_331_71_20_7_clean_items():
    prof, pers = pools.load_pool("profile"), pools.load_pool("personality")
    ev_prof, ev_pers = pools.load_pool("profile", "eval"), pools.load_pool("personality", "eval")
    assert (len(prof), len(pers), len(ev_prof), len(ev_pers)) == (331, 71, 20, 7)
    assert len(pools.pool_file("profile").read_text().splitlines()) == 330  # line 6 holds two profiles
    line6 = pools.decode_line(pools.pool_file("profile").read_text().splitlines()[5])
    assert len(line6) == 2 and prof[5:7] == line6
    assert line6[0].startswith("He is a 37-year-old software engineer") and line6[1].startswith("He is a 46-year-old")
    for items in (prof, pers, ev_prof, ev_pers):
        assert all(not it.startswith('"') and "\n" not in it and it == it.strip() for it in items)
        assert all(pools.item_problem(it) is None for it in items)
    assert not set(prof) & set(ev_prof) and len(set(prof)) == 331
    assert ev_prof[18].endswith("sports events.")  # the record that ended in a literal newline
    words = [len(p.split()) for p in prof]
    assert (min(words), max(words)) == (36, 73)


def test_eval_personas_are_the_benchmarks_100_with_stable_ids():
    ps = pools.eval_personas()
    assert len(ps) == 100 and len({p.id for p in ps}) == 100
    assert ps[0].id == "eval-00-0" and ps[99].id == "eval-19-4"
    assert {p.personality for p in ps} == set(pools.load_pool("personality", "eval")[:5])
    assert ps[7] == Persona("eval-01-2", pools.load_pool("profile", "eval")[1], pools.load_pool("personality", "eval")[2])
    assert ps[0].text() == f"Profile: {ps[0].profile}\nPersonality: {ps[0].personality}"
    assert Persona.from_dict(ps[3].to_dict()) == ps[3]
    with pytest.raises(prefkit.UsageError):
        pools.eval_personas(8)


@pytest.mark.parametrize("text,why", [
    ("", "empty"), ("He is nice.", "too short"), ("I am a 30-year-old " + "very " * 20 + "busy cook.", "He/She"),
    ("He is a 30-year-old cook who " + "really " * 200 + "likes soup.", "too long"),
    ("He is a 30-year-old cook who likes soup and bread and cheese and wine and long walks and", "full sentence"),
    ("He is a 28-year-old baker who has a passion for baking. She is single and has a dog named Max.", "mixes He and She"),
])
def test_item_validation_names_the_problem(text, why):
    assert why in (pools.item_problem(text) or "")


def test_a_bad_pool_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('"He is fine."\nnot json\n')
    with pytest.raises(prefkit.UsageError, match=r"bad.jsonl:2: not a JSON string"):
        pools.load_pool("profile", path=str(bad))
    dup = tmp_path / "dup.jsonl"
    dup.write_text('"He is a."\n"He is a."\n')
    with pytest.raises(prefkit.UsageError, match="repeats item 1"):
        pools.load_pool("profile", path=str(dup))


# ----------------------------------------------------------------------------- build
def test_build_pairs_331_profiles_10_times_seeded_with_stable_ids(tmp_path):
    prof, pers = pools.load_pool("profile"), pools.load_pool("personality")
    a = pools.build_personas(prof, pers, passes=10, seed=0)
    assert len(a) == 3310 and len({p.id for p in a}) == 3310
    assert [p.profile for p in a[:331]] == prof and [p.profile for p in a[331:662]] == prof
    assert a == pools.build_personas(prof, pers, passes=10, seed=0)
    b = pools.build_personas(prof, pers, passes=10, seed=1)
    assert [p.personality for p in a] != [p.personality for p in b]
    assert a[0].id == pools.persona_id(a[0].profile, a[0].personality, 0)
    assert len({p.personality for p in a}) == 71
    r = cli("aloe", "personas", "build", "-o", str(tmp_path / "b"), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["personas"] == 3310 and out["status"] == "done"
    back = pools.read_personas(tmp_path / "b")
    assert back == a
    r = cli("aloe", "personas", "build", "--passes", "0", "-o", str(tmp_path / "c"))
    assert r.exit_code == 2 and "--passes" in r.output


def test_read_personas_refuses_repeated_ids(tmp_path):
    p = Persona("x", "He is a.", "He is b.")
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps(p.to_dict()) + "\n" + json.dumps(p.to_dict()) + "\n")
    with pytest.raises(prefkit.UsageError, match="appears twice"):
        pools.read_personas(f)


# ----------------------------------------------------------------------------- growth
STOP = {"he", "she", "is", "a", "and", "the", "who", "of", "in", "with", "to", "her", "his", "has", "on", "for"}


class BagOfWords:
    """A deterministic stand-in embedder (hashed bag of content words) that counts its encode calls."""

    def __init__(self):
        self.calls = []

    def encode(self, texts, **kw):
        self.calls.append(len(texts))
        out = np.zeros((len(texts), 4096), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z]+", t.lower()):
                if w not in STOP:
                    out[i, zlib.crc32(w.encode()) % 4096] += 1.0
        return out


def novel(i):
    """Items with disjoint vocabularies (cosine 0 with each other under BagOfWords)."""
    words = [f"w{i}x{j}".replace("0", "zero").replace("1", "one") for j in range(12)]
    letters = ["".join(chr(97 + (ord(c) * (i + 3) + k) % 26) for k, c in enumerate(w)) for w in words]
    return "He is " + " ".join(letters[:6]) + ". He likes " + " ".join(letters[6:]) + "."


def answers(*blocks):
    """A mock generator answering each call with the next block of lines."""
    queue = list(blocks)

    def reply(req):
        return queue.pop(0) if queue else ""

    return MockBackend(responder=reply)


def test_near_duplicates_are_rejected_at_the_threshold_and_the_pool_is_embedded_once(tmp_path):
    seeds = pools.load_pool("profile")
    near = seeds[0].replace("34-year-old", "35-year-old")
    exact = seeds[1]
    n1, n2 = novel(1), novel(2)
    block = "\n".join([f"1. {near}", exact, n1, "He is short.", f'"{n2}"', n1.replace(".", "!", 1)])
    emb = BagOfWords()
    backend = answers(block)
    res = grow_pool(GrowConfig(kind="profile", calls_per_round=1, max_rounds=1, min_words=5), None,
                    output_dir=str(tmp_path / "g"), embedder=emb, backend=backend, plot=True, progress=False)
    assert emb.calls == [331, 5]  # the pool once, the round's valid candidates once
    assert res.encode_calls == 2 and res.accepted == 2 and res.pool == 333
    rnd = prefkit.Run.load(tmp_path / "g").results()
    rec = next(r for r in rnd if r.get("kind") == "round")
    assert rec["accepted"] == [n1, n2]
    assert [x["item"] for x in rec["rejected_similar"]] == [near, exact, n1.replace(".", "!", 1)]
    assert rec["max_similarity"][1] == pytest.approx(1.0, abs=1e-4) and rec["max_similarity"][0] > 0.9
    assert rec["max_similarity"][2] < 0.3  # novel: unlike everything
    assert rec["max_similarity"][4] > 0.9  # the second copy of n1 is compared with n1, accepted just before it
    assert [x["why"] for x in rec["invalid"]] == ["too short (3 words < 5)"]
    pool = pools.load_pool("profile", path=str(tmp_path / "g"))
    assert len(pool) == 333 and pool[-2:] == [n1, n2]
    m = json.loads((tmp_path / "g" / "metrics.json").read_text())["grow"]
    assert m["rounds"][0]["accepted"] == 2 and m["rounds"][0]["acceptance"] == round(2 / 6, 4)
    assert (tmp_path / "g" / "growth.png").exists()
    # every call sampled 5 examples of the pool into its prompt
    prompt = backend.requests[0].messages[0]["content"]
    assert sum(1 for s in seeds if s in prompt) == 5 and "20 new descriptions" in prompt


def test_the_threshold_is_the_boundary(tmp_path):
    """Cosine exactly at the threshold passes, just above it is rejected."""
    class Fixed:
        def encode(self, texts, **kw):
            return np.array([[1.0, 0.0] if t.startswith("He is seed") else
                             [0.6, 0.8] if "equal" in t else [0.61, np.sqrt(1 - 0.61 ** 2)] for t in texts])

    idx = pools.PoolIndex(Fixed(), ["He is seed one."])
    out = idx.screen(["He is equal.", "He is above."], 0.6)
    assert [ok for _, ok, _ in out] == [True, False]


def test_growth_stops_at_saturation_and_at_the_target(tmp_path):
    seeds = pools.load_pool("personality")
    copies = "\n".join(seeds[:5])
    res = grow_pool(GrowConfig(kind="personality", calls_per_round=2, patience=2, max_rounds=10), None,
                    output_dir=str(tmp_path / "sat"), embedder=BagOfWords(),
                    backend=answers(*[copies] * 20), plot=False, progress=False)
    assert res.stopped == "saturated" and len(res.rounds) == 2 and res.accepted == 0
    res = grow_pool(GrowConfig(kind="personality", calls_per_round=1, target=73, max_rounds=10, min_words=5), None,
                    output_dir=str(tmp_path / "t"), embedder=BagOfWords(),
                    backend=answers(novel(1), novel(2) + "\n" + novel(3)), plot=False, progress=False)
    assert res.stopped == "target" and res.pool == 73 and len(res.rounds) == 2
    assert len(pools.load_pool("personality", path=str(tmp_path / "t"))) == 73


def test_growth_resumes_round_by_round_without_asking_again(tmp_path):
    backend = answers(novel(1), novel(2), novel(3))
    cfg = dict(kind="profile", calls_per_round=1, min_words=5, patience=5)
    r1 = grow_pool(GrowConfig(max_rounds=1, **cfg), None, output_dir=str(tmp_path / "g"), embedder=BagOfWords(),
                   backend=backend, plot=False, progress=False)
    assert r1.accepted == 1 and backend.call_count == 1
    emb = BagOfWords()
    r2 = grow_pool(GrowConfig(max_rounds=3, **cfg), None, output_dir=str(tmp_path / "g"), embedder=emb,
                   backend=backend, plot=False, progress=False)
    assert backend.call_count == 3  # rounds 2 and 3 only
    assert r2.accepted == 3 and [r["round"] for r in r2.rounds] == [1, 2, 3]
    assert emb.calls == [332, 1, 1]  # the pool (seeds + round 1's item) embedded once
    again = grow_pool(GrowConfig(max_rounds=3, **cfg), None, output_dir=str(tmp_path / "g"), embedder=BagOfWords(),
                      backend=backend, plot=False, progress=False)
    assert backend.call_count == 3 and again.accepted == 3


def test_grow_on_the_cli_with_the_real_embedder_on_the_shipped_eval_pool(tmp_path):
    """all-MiniLM-L6-v2 (bundled, offline): a light paraphrase of a seed is rejected, a new person accepted."""
    seeds = pools.load_pool("profile", "eval")
    para = seeds[3].replace("29-year-old", "30-year-old").replace("enjoys", "loves")
    new = ("He is a 58-year-old retired submarine officer who now repairs antique clocks in his basement workshop. "
           "He has three grandchildren and a parrot named Admiral. He studied marine engineering and volunteers at "
           "a maritime museum on weekends.")
    backend = MockBackend(responder=lambda r: f"{para}\n{new}")
    with backend.installed():
        r = cli("aloe", "personas", "grow", "--kind", "profile", "--seeds", str(pools.pool_file("profile", "eval")),
                "--backend", "mock", "--calls-per-round", "1", "--max-rounds", "1", "-o", str(tmp_path / "g"),
                "--no-plot", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["accepted"] == 1 and out["pool"] == 21 and out["encode_calls"] == 2 and out["plot"] == []
    rec = next(x for x in prefkit.Run.load(tmp_path / "g").results() if x.get("kind") == "round")
    assert rec["accepted"] == [new] and rec["rejected_similar"][0]["max_similarity"] > 0.9
    assert out["seed_similarity"]["items"] == 20
    dry = cli("aloe", "personas", "grow", "--backend", "mock", "--dry-run", "--max-rounds", "7")
    assert dry.exit_code == 0 and "at most 28 calls" in " ".join(dry.output.split())


def test_match_pronouns_pairs_he_with_he_and_she_with_she():
    prof, pers = pools.load_pool("profile"), pools.load_pool("personality")
    loose = pools.build_personas(prof, pers, passes=2, seed=0)
    strict = pools.build_personas(prof, pers, passes=2, seed=0, match_pronouns=True)
    assert sum(pools.pronoun(p.profile) != pools.pronoun(p.personality) for p in loose) > 100
    assert all(pools.pronoun(p.profile) == pools.pronoun(p.personality) for p in strict)
    assert [p.profile for p in strict] == [p.profile for p in loose]


def test_run_together_profiles_are_split_and_numbering_removed():
    from prefkit_aloe.prompts import split_items

    text = ("1. He is a 28-year-old baker. He has a dog. She is a 33-year-old nurse who sings.\n\n"
            "- \"She is a 40-year-old pilot.\"\n")
    assert split_items(text, "profile") == ["He is a 28-year-old baker. He has a dog.", "She is a 33-year-old nurse who sings.",
                                            "She is a 40-year-old pilot."]
    assert len(split_items(text, "personality")) == 2


def test_a_failed_generation_call_stops_the_round_and_only_it_is_retried(tmp_path):
    fail = [True]

    def reply(req):
        if fail[0] and req.key == "call/0/1":
            raise prefkit.BackendError("down", status=400, retryable=False)
        return novel(int(req.key.rsplit("/", 1)[1]) + 1)

    backend = MockBackend(responder=reply)
    cfg = GrowConfig(kind="profile", calls_per_round=2, max_rounds=1, min_words=5)
    with pytest.raises(prefkit.PrefkitError, match="round 1: 1 generation call"):
        grow_pool(cfg, prefkit.BackendOptions(backend="mock", max_retries=0, cache=False),
                  output_dir=str(tmp_path / "g"), embedder=BagOfWords(), backend=backend, plot=False, progress=False)
    assert prefkit.Run.load(tmp_path / "g").manifest["status"] == "failed"
    fail[0] = False
    backend.reset()
    res = grow_pool(cfg, prefkit.BackendOptions(backend="mock", cache=False), output_dir=str(tmp_path / "g"),
                    embedder=BagOfWords(), backend=backend, plot=False, progress=False)
    assert [r.key for r in backend.requests] == ["call/0/1"] and res.accepted == 2 and res.status == "done"
