"""Built-in LLM backends and the ``generate`` / ``models`` / ``keys`` commands.

Backends are registered as lazy specs (module:Class), so listing them or
building the CLI imports no SDK and no torch.
"""

from prefkit.hookspecs import hookimpl

BUILTIN_BACKENDS = (
    ("hf", "prefkit.backends.hf:HFBackend",
     "Local Hugging Face transformers model (batched generation; CPU or GPU)", "HuggingFaceTB/SmolLM2-135M-Instruct", ("transformers", "local")),
    ("openai", "prefkit.backends.openai:OpenAIBackend",
     "OpenAI API, or any OpenAI-compatible server with --base-url (vllm serve, llama.cpp, Ollama, LM Studio)", "gpt-4o-mini", ()),
    ("anthropic", "prefkit.backends.anthropic:AnthropicBackend",
     "Anthropic Messages API", "claude-3-5-haiku-latest", ("claude",)),
    ("cohere", "prefkit.backends.cohere:CohereBackend",
     "Cohere chat API (v2)", "command-r-plus", ()),
    ("mock", "prefkit.testing.backends:mock_factory",
     "Deterministic offline backend for tests and dry runs (scriptable in Python)", "mock", ()),
)


@hookimpl
def register_backends(register):
    from prefkit.backends.base import BackendSpec

    for name, target, description, default_model, aliases in BUILTIN_BACKENDS:
        register(BackendSpec(name, target, description, default_model), name=name, aliases=aliases)


@hookimpl
def register_commands(app):
    from prefkit.commands.generate import generate_command
    from prefkit.commands.keys import keys_app
    from prefkit.commands.models import models_app

    app.command("generate")(generate_command)
    app.add_typer(models_app, name="models")
    app.add_typer(keys_app, name="keys")
