"""Built-in judges, rubrics and the ``judge`` / ``winrate`` commands.

``prefkit judge NAME`` is built from the judges registry: a judge registered with
``command=`` (a Typer command function or ``"module:function"``) gets its command,
from this core or from any plugin, with no change here.

Registered through the same hooks a third-party plugin uses. Kept light: the
command implementations live in :mod:`prefkit.commands.judge`, which imports
the judge layer, numpy and matplotlib only when a command runs.
"""

from prefkit.hookspecs import hookimpl


@hookimpl
def register_judges(register):
    from prefkit.judging.judges import PairwiseJudge, ScoreJudge

    register(PairwiseJudge(), name="pairwise", kind="pairwise", command="prefkit.commands.judge:judge_pairwise_command")
    register(ScoreJudge(), name="score", aliases=("absolute",), kind="absolute",
             command="prefkit.commands.judge:judge_score_command")


@hookimpl
def register_rubrics(register):
    from prefkit.judging.rubric import builtin_rubrics

    for rubric in builtin_rubrics():
        register(rubric, name=rubric.name)


@hookimpl
def register_commands(app):
    import typer

    from prefkit.cli import judge_command_of
    from prefkit.commands.judge import rubrics_command, winrate_command
    from prefkit.plugins import registry

    judge_app = typer.Typer(help="LLM judges: pairwise (both orders, disagreement = tie), absolute 1-N scores, "
                            "and every judge a plugin registers (`prefkit judges`).",
                            no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
    for entry in registry("judges").entries():  # one command per registered judge that brings one
        command = judge_command_of(entry)
        if command is not None:
            judge_app.command(entry.name)(command)
    judge_app.command("rubrics")(rubrics_command)
    app.add_typer(judge_app, name="judge")
    app.command("winrate")(winrate_command)
