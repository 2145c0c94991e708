"""Schema mapping and the training subsample on the FIXTURE (synthetic rows with the exact hub schema)."""

import collections

import pytest

import prefkit
from prefkit_compred import data
from prefkit_compred.fixture import build


def _arrow_types(ds):
    return {name: str(t) for name, t in zip(ds.data.schema.names, ds.data.schema.types)}


def test_fixture_has_the_hub_schema_in_both_layouts(compred_fixture):
    import datasets

    expected = {"string": "string", "float64": "double", "int64": "int64", "bool": "bool"}
    for config, schema, split in (("finance", data.PREF_SCHEMA, "train_pref"),
                                  ("finance_test_prompts", data.PROMPTS_SCHEMA, "test_prompts")):
        hub = datasets.load_dataset(str(compred_fixture["hub"] / "compred"), config, split=split)
        mirror = datasets.load_from_disk(str(compred_fixture["data_dir"] / f"compred-{config}"))[split]
        want = {k: expected[v] for k, v in schema.items()}
        assert _arrow_types(hub) == want
        assert _arrow_types(mirror) == want
        assert hub.to_list() == mirror.to_list()
    shp = datasets.load_dataset(str(compred_fixture["hub"] / "shp"), split="train")
    assert set(shp.column_names) == set(data.SHP_SCHEMA)
    assert all(d.endswith("_train") for d in shp["domain"])


def test_fixture_covers_what_the_subsample_needs():
    rows = build()["finance"]["train_pref"]
    per_post = collections.Counter(r["post_id"] for r in rows)
    assert max(per_post.values()) == 6 and min(per_post.values()) == 1   # several pairs, more than the cap
    ratios = [r["score_ratio"] for r in rows]
    assert min(ratios) < 2 <= max(ratios)                                # both sides of 2
    assert {r["labels"] for r in rows} == {0, 1}


def test_pair_mapping_follows_labels():
    row = {"post_id": "p1", "domain": "investing", "title": "T", "history": "Body", "c_root_id_A": "a",
           "c_root_id_B": "b", "score_A": 10, "score_B": 40, "human_ref_A": "comment A", "human_ref_B": "comment B",
           "labels": 0, "score_ratio": 4.0}
    p = data.pair_of(row)
    assert (p["chosen"], p["rejected"], p["score_chosen"]) == ("comment B", "comment A", 40)
    assert p["post"] == "T\nBody" and p["subreddit"] == "investing" and p["pair_id"] == "p1:a:b"
    p1 = data.pair_of({**row, "labels": 1})
    assert (p1["chosen"], p1["rejected"]) == ("comment A", "comment B")
    shp = data.pair_of({**row, "domain": "ask_culinary_train", "history": "T\nBody", "title": None}, "shp")
    assert shp["subreddit"] == "ask_culinary" and shp["post"] == "T\nBody"


def test_subsample_counts_match_a_direct_count(compred_fixture):
    ds = data.open_split(data.subset("finance"), "train_pref", data_dir=compred_fixture["data_dir"])
    res = data.subsample(ds, seed=3)
    rows = ds.to_list()
    kept = [r for r in rows if r["score_ratio"] >= 2]
    posts = collections.Counter(r["post_id"] for r in kept)
    assert res.counts["before"] == dict(collections.Counter(r["domain"] for r in rows))
    assert res.counts["after_ratio"] == dict(collections.Counter(r["domain"] for r in kept))
    assert res.counts["total_after"] == sum(min(5, n) for n in posts.values()) < res.counts["total_after_ratio"]
    out = res.dataset.to_list()
    assert all(r["score_ratio"] >= 2 for r in out)
    assert max(collections.Counter(r["post_id"] for r in out).values()) == 5
    # seeded: same seed, same pairs and order; another seed, another sample of the 6-pair posts
    again = data.subsample(ds, seed=3).dataset.to_list()
    assert again == out
    other = data.subsample(ds, seed=4).dataset.to_list()
    key = lambda r: (r["post_id"], r["c_root_id_A"], r["c_root_id_B"])  # noqa: E731
    assert sorted(map(key, other)) != sorted(map(key, out))


def test_streamed_hub_split_gives_the_same_subsample(compred_fixture):
    import datasets

    hub = str(compred_fixture["hub"] / "compred")
    mirror = data.open_split(data.subset("finance"), "train_pref", data_dir=compred_fixture["data_dir"])
    streamed = datasets.load_dataset(hub, "finance", split="train_pref", streaming=True)
    a, b = data.subsample(mirror, seed=1), data.subsample(streamed, seed=1)
    assert a.counts == b.counts
    assert a.dataset.to_list() == b.dataset.to_list()


def test_hub_path_reads_the_fixture_laid_out_as_the_hub(compred_fixture):
    sub = data.subset("finance")
    via_hub, c_hub = data.load_pairs(sub, sub.train, hub_id=str(compred_fixture["hub"] / "compred"), seed=2)
    via_mirror, c_mirror = data.load_pairs(sub, sub.train, data_dir=compred_fixture["data_dir"], seed=2)
    assert via_hub == via_mirror and c_hub == c_mirror
    posts, counts = data.load_posts(sub, hub_id=str(compred_fixture["hub"] / "compred"))
    assert counts["posts"] == len({p["post_id"] for p in posts}) == counts["rows"] - counts["duplicates_dropped"]
    shp_pairs, shp_counts = data.load_pairs(data.subset("shp"), "train", hub_id=str(compred_fixture["hub"] / "shp"))
    assert set(shp_counts["after"]) == {"askculinary", "legaladvice"}


def test_missing_data_is_one_clear_error(tmp_path):
    with pytest.raises(prefkit.PrefkitError, match="looked in the local mirror"):
        data.open_split(data.subset("history"), "train_pref", data_dir=tmp_path, hub_id=str(tmp_path / "nope"))
    with pytest.raises(prefkit.UsageError, match="unknown subset"):
        data.subset("cooking")
    assert data.subset("gender_and_sexuality").config == "gender_sexuality"


def test_registered_sources_give_preference_records(compred_fixture):
    recs = prefkit.load_records("compred:history", split="validation_pref", data_dir=compred_fixture["data_dir"])
    assert recs and all(r.community in ("AskHistorians", "history") for r in recs)
    assert recs[0].row_id.count(":") == 2 and recs[0].chosen_text
    shp = prefkit.load_records("shp", split="test", data_dir=compred_fixture["data_dir"])
    assert {r.community for r in shp} == {"askculinary", "legaladvice"}
