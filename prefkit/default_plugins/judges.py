"""Built-in judges, rubrics and the ``judge`` / ``winrate`` commands.

Registered through the same hooks a third-party plugin uses. Kept light: the
command implementations live in :mod:`prefkit.commands.judge`, which imports
the judge layer, numpy and matplotlib only when a command runs.
"""

from prefkit.hookspecs import hookimpl


@hookimpl
def register_judges(register):
    from prefkit.judging.judges import PairwiseJudge, ScoreJudge

    register(PairwiseJudge(), name="pairwise", kind="pairwise")
    register(ScoreJudge(), name="score", aliases=("absolute",), kind="absolute")


@hookimpl
def register_rubrics(register):
    from prefkit.judging.rubric import builtin_rubrics

    for rubric in builtin_rubrics():
        register(rubric, name=rubric.name)


@hookimpl
def register_commands(app):
    import typer

    from prefkit.commands.judge import judge_pairwise_command, judge_score_command, rubrics_command, winrate_command

    judge_app = typer.Typer(help="LLM judges: pairwise (both orders, disagreement = tie) and absolute 1-N scores.",
                            no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
    judge_app.command("pairwise")(judge_pairwise_command)
    judge_app.command("score")(judge_score_command)
    judge_app.command("rubrics")(rubrics_command)
    app.add_typer(judge_app, name="judge")
    app.command("winrate")(winrate_command)
