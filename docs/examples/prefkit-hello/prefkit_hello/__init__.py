"""prefkit-hello: an example third-party prefkit plugin.

It registers one item through three of prefkit's hooks:

* a dataset source ``hello-prefs`` (a small preference file shipped in the package),
* a persona strategy ``echo`` (a trivially simple way to "infer" a persona),
* a command ``prefkit hello`` that loads the source through the core and prints it,
* a command ``prefkit hello-chat`` (:mod:`prefkit_hello.chat`): multi-turn conversations with a
  model per role (user simulator, assistant with two candidates, judge), on prefkit's conversation API.

Keep a plugin's top level light: import heavy libraries inside functions, so
``prefkit --help`` stays fast for everyone who installs your plugin.
"""

from __future__ import annotations

from pathlib import Path

import prefkit

DATA = Path(__file__).parent / "hello.jsonl"


class HelloSource(prefkit.DatasetSource):
    """Reads the packaged JSONL file; any core command can use it by name."""

    def load_rows(self, config=None, split=None, *, data_dir=None):
        return prefkit.read_table(DATA)


class EchoStrategy:
    """A persona strategy: build requests for a persona; turn the reply into one."""

    name = "echo"
    description = "Asks for a persona in one plain sentence, without demonstrations."

    def build_messages(self, prompt: str, preferred: str, dispreferred: str, **context) -> list[dict]:
        return [{"role": "user", "content": (
            f"Prompt: {prompt}\nPreferred answer: {preferred}\nOther answer: {dispreferred}\n"
            "In one sentence starting with 'The user is', describe who would prefer the first answer.")}]

    def parse(self, text: str) -> str:
        return text.strip().splitlines()[0] if text.strip() else ""


@prefkit.hookimpl
def register_datasets(register):
    register(HelloSource(name="hello-prefs", description="Three toy preference pairs shipped with prefkit-hello"))


@prefkit.hookimpl
def register_persona_strategies(register):
    register(EchoStrategy())


@prefkit.hookimpl
def register_commands(app):
    import typer

    from .chat import register

    register(app)

    @app.command("hello")
    def hello(
        limit: int = typer.Option(3, "--limit", help="How many pairs to show."),
        json_: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Say hello with the plugin's own dataset (an example plugin command)."""
        from prefkit import print_json, print_table

        records = prefkit.load_records("hello-prefs", limit=limit)
        rows = [{"row_id": r.row_id, "prompt": r.prompt_text, "chosen": r.chosen_text} for r in records]
        if json_:
            print_json(rows)
        else:
            print_table(rows, title="hello from prefkit-hello")
