"""CLI of the ComPreD plugin: ``prefkit compred train|reward|predict|judge|report|fixture``.

Each command builds its config dataclass, calls the run function of the library and prints
the result; heavy imports happen inside the run functions.
"""

from __future__ import annotations

from typing import List, Optional

import typer

import prefkit

from .evaluate import JudgeConfig, format_ci as _ci
from .predict import PredictOptions
from .training import RewardOptions, TrainOptions

CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    help="ComPO / ComPreD (Kumar et al.): condition a model on the community (subreddit) whose preferences it "
         "should follow: SFT then DPO on Reddit preference pairs, a reward model, generation, upvote judging.",
    no_args_is_help=True, context_settings=CONTEXT, rich_markup_mode="rich")

JSON = typer.Option(False, "--json", metavar="", help="Print the result as JSON.")


@app.command("train")
@prefkit.with_options(TrainOptions, "opts")
@prefkit.with_options(prefkit.RunOptions, "run_opts")
def train_cmd(json_: bool = JSON, opts: TrainOptions = None, run_opts: prefkit.RunOptions = None) -> None:
    """SFT on the preferred comments, then DPO on the pairs, conditioned on --context (preset compred-paper)."""
    from .training import train

    res = train(opts, output_dir=run_opts.output_dir, run_name=run_opts.run_name, fresh=run_opts.fresh)
    if json_:
        prefkit.print_json(res)
        return
    d = res["data"]
    prefkit.print_table([{"subreddit": s, "pairs": d["subsample"]["before"].get(s),
                          "ratio >= 2": d["subsample"]["after_ratio"].get(s), "subsample": n}
                         for s, n in d["subsample"]["after"].items()], title="training pairs per subreddit")
    dpo = res["dpo"]
    prefkit.print_table([{"stage": "sft", "train loss": res["sft"].get("train_loss"), "eval loss": res["sft"].get("eval_loss"),
                          "reward margin": None, "reward accuracy": None},
                         {"stage": "dpo", "train loss": dpo.get("train_loss"), "eval loss": dpo.get("eval_loss"),
                          "reward margin": dpo.get("eval_rewards/margins"),
                          "reward accuracy": dpo.get("eval_rewards/accuracies")}], title="training")
    prefkit.info(f"model: {res['handoff']['model_dir']}  (run {res['run']})")


@app.command("reward")
@prefkit.with_options(RewardOptions, "opts")
@prefkit.with_options(prefkit.RunOptions, "run_opts")
def reward_cmd(json_: bool = JSON, opts: RewardOptions = None, run_opts: prefkit.RunOptions = None) -> None:
    """Train a Bradley-Terry reward model; accuracy per subreddit and overall on test_pref."""
    from .training import reward

    res = reward(opts, output_dir=run_opts.output_dir, run_name=run_opts.run_name, fresh=run_opts.fresh)
    if json_:
        prefkit.print_json(res)
        return
    test = res["test"]
    rows = [{"subreddit": f"r/{s}", "pairs": a["n"], "accuracy": a["accuracy"], "CI": _ci(a.get("accuracy_ci"))}
            for s, a in test["per_subreddit"].items()]
    o = test["overall"]
    rows.append({"subreddit": "overall", "pairs": o["n"], "accuracy": o["accuracy"], "CI": _ci(o.get("accuracy_ci"))})
    prefkit.print_table(rows, title=f"reward model accuracy on {res['test_split']} (r_chosen > r_rejected)")
    prefkit.info(f"run {res['run']}")


@app.command("predict")
@prefkit.with_options(PredictOptions, "opts")
@prefkit.with_options(prefkit.BackendOptions, "llm")
@prefkit.with_options(prefkit.RunOptions, "run_opts")
def predict_cmd(run_or_model: str = typer.Argument(..., help="A 'compred train' run directory, a model directory or a "
                                            "model id (served by the backend)."),
                json_: bool = JSON, opts: PredictOptions = None, llm: prefkit.BackendOptions = None,
                run_opts: prefkit.RunOptions = None) -> None:
    """One greedy answer per test post (deduplicated by post_id), keyed by post_id."""
    from .predict import predict

    res = predict(run_or_model, opts, llm, output_dir=run_opts.output_dir, run_name=run_opts.run_name, fresh=run_opts.fresh)
    if json_:
        prefkit.print_json(res)
        return
    c = res["counts"]
    prefkit.print_table([{"posts": c["posts"], "duplicate rows dropped": c["duplicates_dropped"],
                          "answered": c["done"], "failed": c["failed"],
                          "post truncated": c["prompt_policy"]["post_truncated"],
                          "hit --max-new-tokens": c["hit_max_new_tokens"]}],
                        title=f"compred predict {res['subset']} --context {res['context']} ({res['status']})")
    prefkit.info(f"outputs: {res['run']}/results.jsonl")


@app.command("judge")
@prefkit.with_options(JudgeConfig, "cfg")
@prefkit.with_options(prefkit.BackendOptions, "llm")
@prefkit.with_options(prefkit.RunOptions, "run_opts")
def judge_cmd(a: str = typer.Argument(..., help="Outputs A: a 'compred predict' run directory (or its results.jsonl)."),
              b: str = typer.Argument(..., help="Outputs B (win rates are of B over A)."),
              json_: bool = JSON, cfg: JudgeConfig = None, llm: prefkit.BackendOptions = None,
              run_opts: prefkit.RunOptions = None) -> None:
    """Which answer would get more upvotes in that subreddit: B vs A, both orders, joined on post_id."""
    from .evaluate import judge, table_rows

    res = judge(a, b, cfg, llm, output_dir=run_opts.output_dir, run_name=run_opts.run_name, fresh=run_opts.fresh)
    if json_:
        prefkit.print_json(res)
        return
    lab = res["labels"]
    prefkit.print_table(table_rows(res), title=f"B = {lab['b']} vs A = {lab['a']} ({res['counts']['judged']} posts)")
    prefkit.info(f"plot: {res['plot'][0] if res['plot'] else '-'}  (run {res['run']})")


@app.command("report")
def report_cmd(runs: List[str] = typer.Argument(..., help="compred train / reward / predict / judge run directories."),
               plot_to: Optional[str] = typer.Option(None, "--plot-to", help="Plot path (default: "
                                                     "<first run's folder>/compred-report.png)."),
               json_: bool = JSON) -> None:
    """One table and plot comparing context modes (subreddit vs none vs random-subreddit)."""
    from .evaluate import report

    res = report(runs, output=plot_to)
    if json_:
        prefkit.print_json(res)
        return
    prefkit.print_table(res["rows"], columns=["run", "kind", "comparison", "metric", "value", "ci", "n"],
                        title="ComPreD context modes")
    if res["plot"]:
        prefkit.info(f"plot: {res['plot'][0]}")


@app.command("fixture")
def fixture_cmd(root: str = typer.Argument(..., help="Folder to write the fixture to."),
                seed: int = typer.Option(0, "--seed", help="Seed of the synthetic rows."),
                json_: bool = JSON) -> None:
    """Write the small synthetic FIXTURE with the hub schema (hub layout + offline mirror; not real data)."""
    from .fixture import write

    res = write(root, seed=seed)
    if json_:
        prefkit.print_json(res)
        return
    prefkit.print_table([{"mirror": k, **v} for k, v in res["configs"].items()], title="compred fixture (synthetic)")
    prefkit.info(f"use --data-dir {res['data_dir']}  (hub layout: {res['hub']})")
