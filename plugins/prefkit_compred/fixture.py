"""Write the ComPreD/SHP **fixture**: a small, synthetic stand-in with the exact hub schema.

No copy of ComPreD or SHP is available offline, so tests and the documentation's worked
example run on this fixture. It is not real Reddit data: posts and comments are built from
short per-community phrase banks, and in every subreddit the comments in the community's
favoured style get the higher scores (so training has something to pick up).

What it holds (``seed`` 0):

* ComPreD subsets ``finance`` (r/personalfinance, r/investing, r/financialindependence) and
  ``history`` (r/AskHistorians, r/history): ``train_pref``, ``validation_pref``,
  ``test_pref`` and ``<subset>_test_prompts`` with every hub column and dtype; posts with
  one, three or six pairs (posts with six have every ratio >= 2, so the 5-per-post cap bites), score ratios on both sides of 2,
  ``labels`` on both sides;
* SHP: ``train``, ``validation``, ``test`` with ``domain`` = ``<subreddit>_<split>``.

Layouts written under ``ROOT``:

* ``ROOT/hub/compred/``: the hub repository's files (``README.md`` with the config table,
  ``finance/train_pref-00000-of-00001-<hash>.parquet``, ``finance_test_prompts/test_prompts-...``);
  ``ROOT/hub/shp/`` likewise (``<subreddit>/<split>.json`` JSON lines, as SHP ships them).
  ``datasets.load_dataset("ROOT/hub/compred", "finance")`` reads it like the hub;
* ``ROOT/data/``: the offline mirror, ``compred-finance/``, ``compred-finance_test_prompts/``,
  ``compred-history/``, ``compred-history_test_prompts/``, ``shp/`` (``save_to_disk``
  DatasetDicts with the hub's split names): pass ``--data-dir ROOT/data``.

Run it: ``python -m prefkit_compred.fixture ROOT`` (prints what it wrote).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import sys
from pathlib import Path
from typing import Any

from .data import PREF_SCHEMA, PROMPTS_SCHEMA, SHP_SCHEMA

#: subset -> subreddit -> (topics, favoured comment style, other styles)
COMMUNITIES: dict[str, dict[str, dict[str, Any]]] = {
    "finance": {
        "personalfinance": {
            "topics": ["paying off a car loan early", "my first credit card", "a surprise medical bill",
                       "moving out on a tight budget", "splitting rent with a partner", "a 401k match at a new job",
                       "student loans after graduation", "saving for a wedding"],
            "good": ["Build a one month emergency fund first, then pay the highest interest debt. Write a budget "
                     "and automate the savings transfer on payday.",
                     "Start with the basics: emergency fund, employer match, then high interest debt. A simple "
                     "spreadsheet budget keeps it honest."],
            "bad": ["Just put it all in crypto, it always goes up.", "Honestly I would not worry about it.",
                    "Buy a house now before prices rise, money will sort itself out."],
        },
        "investing": {
            "topics": ["index funds versus picking stocks", "a market drop this week", "bond yields rising",
                       "rebalancing once a year", "dividend stocks for income", "fees on my brokerage account",
                       "investing a small inheritance", "dollar cost averaging"],
            "good": ["Low cost broad index funds beat most stock pickers after fees. Keep a fixed allocation and "
                     "rebalance instead of timing the market.",
                     "Look at the expense ratio first. A total market fund with fees under 0.1% and a long "
                     "horizon is hard to beat."],
            "bad": ["Sell everything now and wait for the crash.", "My cousin doubled his money on options, try that.",
                    "Fees do not matter much, pick whatever is popular."],
        },
        "financialindependence": {
            "topics": ["retiring at forty", "the four percent rule", "a high savings rate on a normal salary",
                       "coast FI and part time work", "health insurance before sixty five", "a paid off mortgage",
                       "leaving a stressful job", "tracking net worth"],
            "good": ["Your savings rate matters more than returns. At 50% saved you can retire in about 17 years; "
                     "track expenses and plan around a 3.5 to 4% withdrawal rate.",
                     "Work out your yearly spending, multiply by 25, and raise the savings rate. Coast FI is a "
                     "fine middle step."],
            "bad": ["Retirement is boring, spend it while you are young.", "Nobody actually retires early, it is a myth.",
                    "Just win the lottery lol."],
        },
    },
    "history": {
        "AskHistorians": {
            "topics": ["bread prices in ancient Rome", "letters sent during the Crimean War",
                       "how medieval peasants kept time", "literacy in colonial Boston", "the Silk Road caravans",
                       "shipbuilding in Venice", "paper money under the Song dynasty", "roads of the Inca empire"],
            "good": ["The sources are thin, but tax records and a few surviving letters suggest a gradual change. "
                     "For further reading see the standard survey of the period and its bibliography.",
                     "Historians disagree here. The account rests on two main sources, one written decades later; "
                     "treat the numbers as estimates."],
            "bad": ["I saw a documentary once that said it was aliens.", "Everyone back then was just stupid.",
                    "Pretty sure it was like today but with horses."],
        },
        "history": {
            "topics": ["a photo of a castle I visited", "my grandfather's war medal", "the oldest map in my town",
                       "a museum trip to see armour", "coins found in a field", "a ruined abbey",
                       "a diary from the 1920s", "an old railway station"],
            "good": ["What a find! Medals like that were issued to whole units, so the regiment's records can tell "
                     "you where he served. Local museums often help for free.",
                     "Great photo. That style of tower dates it to the late middle ages; the town archive will "
                     "have more."],
            "bad": ["Cool.", "History is boring, who cares.", "Sell it on eBay for a fortune."],
        },
    },
}
SHP_COMMUNITIES = {
    "askculinary": {
        "topics": ["a sourdough starter that will not rise", "searing steak without smoke", "thick gravy",
                   "storing fresh herbs", "a split hollandaise"],
        "good": ["Lower the heat and add one spoon of warm water while whisking; heat control is the whole trick.",
                 "Weigh the flour, keep the starter warm, and feed it twice a day for a week."],
        "bad": ["Just buy it at the store.", "Microwave it, works every time."]},
    "legaladvice": {
        "topics": ["a landlord keeping my deposit", "a neighbour's tree on my fence", "an unpaid final paycheck",
                   "a parking ticket on private land", "a contract with no end date"],
        "good": ["Send a dated written demand citing the deposit law of your state, keep copies, and file in small "
                 "claims if they miss the deadline. This is not legal advice.",
                 "Document everything in writing and talk to your state's labor board; it costs nothing."],
        "bad": ["Sue them for a million dollars.", "Just stop paying rent, they cannot do anything."]},
}

_TITLES = ["Question about {t}", "Advice needed: {t}", "How should I think about {t}?", "{t} - what would you do?"]
_BODIES = ["I have been reading about {t} for a while and I am still unsure. {d} What is the sensible approach?",
           "Long time lurker. {d} I would appreciate any thoughts on {t}.",
           "Context: {d} Everyone around me has a different opinion about {t}."]
_DETAILS = ["I am 27 and live alone.", "We have two kids and one income.", "I only have a few hours a week for this.",
            "I have tried twice already without luck.", "My family thinks I am overthinking it.",
            "Money is tight this year."]


def _comments(rng: random.Random, spec: dict[str, Any], n: int) -> list[tuple[str, int]]:
    """``n`` comments with scores: favoured-style comments score high, the others low; ties avoided."""
    out, used = [], set()
    for j in range(n):
        # busy posts (4+ comments): the favoured half first, scores a factor 3 apart, so every pair has a
        # ratio >= 2 and the 5-pairs-per-post cap has to cut; small posts: random scores on both sides of 2
        good = j < (n + 1) // 2 if n >= 4 else j % 2 == 0
        text = rng.choice(spec["good"] if good else spec["bad"])
        extra = rng.choice(["", " Good luck!", " Hope this helps.", " Edit: typo."])
        text = text + extra
        if n >= 4:
            score = 2 * 3 ** (n - j)
        else:
            score = rng.randint(40, 300) if good else rng.randint(3, 60)
        while score in used:
            score += 1
        used.add(score)
        out.append((text, score))
    return out


def _post(rng: random.Random, topic: str) -> tuple[str, str]:
    title = rng.choice(_TITLES).format(t=topic)
    title = title[0].upper() + title[1:]
    body = rng.choice(_BODIES).format(t=topic, d=rng.choice(_DETAILS))
    return title, body


def _pairs(rng: random.Random, post: dict[str, Any], comments: list[tuple[str, str, int, float]],
           shp: bool) -> list[dict[str, Any]]:
    rows = []
    for (ia, ta, sa, ca), (ib, tb, sb, cb) in itertools.combinations(comments, 2):
        if rng.random() < 0.5:  # randomise which comment is A, as SHP does
            (ia, ta, sa, ca), (ib, tb, sb, cb) = (ib, tb, sb, cb), (ia, ta, sa, ca)
        labels = 1 if sa > sb else 0
        hi, lo = max(sa, sb), min(sa, sb)
        row = {
            "post_id": post["post_id"], "domain": post["domain"],
            "history": post["history"], "c_root_id_A": ia, "c_root_id_B": ib,
            "created_at_utc_A": ca, "created_at_utc_B": cb, "score_A": sa, "score_B": sb,
            "human_ref_A": ta, "human_ref_B": tb, "labels": labels,
            "seconds_difference": float(abs(ca - cb)), "score_ratio": hi / lo,
        }
        if shp:
            row["upvote_ratio"] = round(rng.uniform(0.7, 1.0), 2)
            row["created_at_utc_A"], row["created_at_utc_B"] = int(ca), int(cb)
        else:
            row["title"] = post["title"]
            row["overlap_ratio"] = round(rng.uniform(0.0, 0.3), 4)
            row["len_ratio"] = round(len(ta) / max(1, len(tb)), 4)
        rows.append(row)
    return rows


def build(seed: int = 0, posts_per_split: dict[str, int] | None = None) -> dict[str, dict[str, list[dict]]]:
    """The fixture's rows: ``{config: {split: [rows]}}`` (``shp`` for SHP)."""
    rng = random.Random(seed)
    sizes = posts_per_split or {"train": 6, "validation": 2, "test": 3}
    split_names = {"train": "train_pref", "validation": "validation_pref", "test": "test_pref"}
    out: dict[str, dict[str, list[dict]]] = {}
    pid = itertools.count(1)
    cid = itertools.count(1)
    comment_counts = [2, 3, 4]  # 1, 3 or 6 pairs per post (6 > the cap of 5)
    for subset, communities in [*COMMUNITIES.items(), ("shp", SHP_COMMUNITIES)]:
        shp = subset == "shp"
        tables: dict[str, list[dict]] = {}
        prompts: list[dict] = []
        for sub_name, spec in communities.items():
            topics = list(spec["topics"])
            rng.shuffle(topics)
            t_iter = itertools.cycle(topics)
            for split, n_posts in sizes.items():
                for k in range(n_posts):
                    title, body = _post(rng, next(t_iter))
                    p = {"post_id": f"fx{next(pid):04d}", "title": title,
                         "domain": f"{sub_name}_{split}" if shp else sub_name,
                         "history": f"{title}\n{body}" if shp else body}
                    n_comments = comment_counts[k % len(comment_counts)]
                    base_t = 1_600_000_000.0 + rng.randint(0, 10_000_000)
                    comments = [(f"c{next(cid):05d}", text, score, base_t + 60.0 * j)
                                for j, (text, score) in enumerate(_comments(rng, spec, n_comments))]
                    name = split if shp else split_names[split]
                    tables.setdefault(name, []).extend(_pairs(rng, p, comments, shp))
                    if split == "test" and not shp:
                        ranked = sorted(comments, key=lambda c: -c[2])
                        for rank, (c_id, text, score, t) in enumerate(ranked):
                            prompts.append({"rank": rank, "only_comment": len(ranked) == 1, "domain": p["domain"],
                                            "post_id": p["post_id"], "title": p["title"], "history": p["history"],
                                            "c_root_id": c_id, "created_at_utc": t, "score": score,
                                            "human_ref": text})
        out[subset] = tables
        if not shp:
            out[f"{subset}_test_prompts"] = {"test_prompts": prompts}
    return out


def _schema(columns: dict[str, str]):
    import pyarrow as pa

    types = {"string": pa.string(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}
    return pa.schema([(name, types[t]) for name, t in columns.items()])


def _table(rows: list[dict], columns: dict[str, str]):
    import pyarrow as pa

    return pa.Table.from_pylist([{c: r[c] for c in columns} for r in rows], schema=_schema(columns))


def _schema_of(config: str) -> dict[str, str]:
    if config == "shp":
        return SHP_SCHEMA
    return PROMPTS_SCHEMA if config.endswith("_test_prompts") else PREF_SCHEMA


def _readme(configs: dict[str, dict[str, list[dict]]], pattern: str) -> str:
    lines = ["---", "license: odc-by", "configs:"]
    for config, splits in configs.items():
        lines.append(f"- config_name: {config}")
        lines.append("  data_files:")
        for split in splits:
            lines.append(f"  - split: {split}")
            lines.append(f"    path: \"{pattern.format(config=config, split=split)}\"")
    lines += ["---", "", "# prefkit ComPreD fixture", "",
              "Synthetic rows with the hub schema, written by `python -m prefkit_compred.fixture`. Not real data.", ""]
    return "\n".join(lines)


def write(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write the fixture under ``root`` (hub layout in ``root/hub``, mirror in ``root/data``); returns a summary."""
    import datasets
    import pyarrow.parquet as pq

    root = Path(root)
    datasets.disable_progress_bars()
    tables = build(seed)
    hub, data = root / "hub" / "compred", root / "data"
    compred = {k: v for k, v in tables.items() if k != "shp"}
    for config, splits in compred.items():
        for split, rows in splits.items():
            # a content hash in the name, as the hub's files have (also keeps the datasets cache honest)
            digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
            path = hub / config / f"{split}-00000-of-00001-{digest}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            for old in path.parent.glob(f"{split}-*.parquet"):
                old.unlink()
            pq.write_table(_table(rows, _schema_of(config)), path)
    hub.mkdir(parents=True, exist_ok=True)
    (hub / "README.md").write_text(_readme(compred, "{config}/{split}-*.parquet"), encoding="utf-8")
    # SHP ships one JSON-lines file per subreddit and split
    shp_hub = root / "hub" / "shp"
    for split, rows in tables["shp"].items():
        by_sub: dict[str, list[dict]] = {}
        for r in rows:
            by_sub.setdefault(r["domain"].rsplit("_", 1)[0], []).append(r)
        for sub, sub_rows in by_sub.items():
            path = shp_hub / sub / f"{split}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                for r in sub_rows:
                    fh.write(json.dumps({c: r[c] for c in SHP_SCHEMA}, ensure_ascii=False) + "\n")
    (shp_hub / "README.md").write_text(_readme({"default": tables["shp"]}, "*/{split}.json"), encoding="utf-8")
    # the offline mirror: save_to_disk DatasetDicts with the hub's split names
    summary: dict[str, Any] = {"root": str(root), "hub": str(root / "hub"), "data_dir": str(data), "configs": {}}
    for config, splits in tables.items():
        dd = datasets.DatasetDict({split: datasets.Dataset(_table(rows, _schema_of(config)))
                                   for split, rows in splits.items()})
        name = "shp" if config == "shp" else f"compred-{config}"
        dd.save_to_disk(str(data / name))
        summary["configs"][name] = {split: len(rows) for split, rows in splits.items()}
    return summary


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m prefkit_compred.fixture ROOT [SEED]\n\n" + (__doc__ or "").split("\n\n")[0])
        return 0 if args else 2
    summary = write(args[0], seed=int(args[1]) if len(args) > 1 else 0)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
