"""Shared fixtures of the ALOE tests: an isolated home, small persona files, scripted roles.

The scripted roles answer deterministically from the request (conversation, turn, call name),
so two runs see the same conversations and a test can assert exact values:

* ``user``: ``"msg <turn> of <conversation>"``;
* ``extractor``: two lines ``Profile: ...`` / ``Personality: None``;
* ``responder``: ``"AWARE <turn> <conversation>"`` for the persona-aware call,
  ``"PLAIN<k> <turn> <conversation>"`` for the plain call of responder model k;
* ``judge``: a policy reading the two replies of the prompt: ``"aware"`` (always names the
  AWARE reply: consistent), ``"plain"``, ``"first"`` (always the first slot: position bias), or
  ``"unreadable"``.
"""

from __future__ import annotations

import re

import pytest

import prefkit
from prefkit.testing import Script, ScriptedBackend


@pytest.fixture(autouse=True)
def _isolated(prefkit_home, monkeypatch):
    """Own PREFKIT_HOME (cache, keys), no real API keys or provider URLs, offline hub."""
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "CO_API_KEY", "COHERE_API_KEY", "PREFKIT_PRICES",
                "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "CO_API_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.chdir(prefkit_home)
    yield prefkit_home


def write_personas(path, n=3):
    """``n`` small personas (valid ids, distinct texts) written as a personas.jsonl."""
    from prefkit_aloe.pools import Persona, persona_id, write_personas as _write

    personas = []
    for i in range(n):
        prof = f"He is person number {i}, a {30 + i}-year-old baker who keeps {i + 2} cats and plays chess on weekends."
        pers = f"He is cheerful and curious, variant {i}, and he likes short jokes."
        personas.append(Persona(persona_id(prof, pers, 0), prof, pers))
    _write(path, personas)
    return personas


@pytest.fixture
def personas_file(tmp_path):
    path = tmp_path / "personas.jsonl"
    write_personas(path, 3)
    return path


_FIRST = re.compile(r"First reply:\n(.*?)\n\nSecond reply:\n(.*?)\n\n", re.S)


def _judge(policy):
    def answer(req):
        if policy == "unreadable":
            return "hmm, hard to say"
        m = _FIRST.search(req.messages[-1]["content"])
        first, second = m.group(1), m.group(2)
        if policy == "first":
            return "first"
        want = "AWARE" if policy == "aware" else "PLAIN"
        return "first" if first.startswith(want) else "second"
    return answer


def _name(req):
    """The call name from the engine's key ``conversation/turn/name[@attempt]``."""
    return req.key.split("/")[2].split("@")[0]


def aloe_script(judge="aware", user=None, fail=None):
    """A Script for the four ALOE roles (see the module docstring).

    ``fail(request) -> bool``: those requests fail with a non-retryable provider error (checked first).
    """
    def user_reply(req):
        return f"msg {req.meta['turn']} of {req.meta['conversation']}"

    def responder(req):
        name = _name(req)
        tag = "AWARE" if name == "aware" else name.upper()
        return f"{tag} {req.meta['turn']} {req.meta['conversation']}"

    script = Script()
    if fail is not None:
        script.on(match=fail, reply=prefkit.BackendError("injected fault", status=400, retryable=False))
    return (script.on("user", reply=user if user is not None else user_reply)
            .on("extractor", reply="Profile: He is a baker.\nPersonality: None")
            .on("responder", reply=responder)
            .on("judge", reply=_judge(judge) if isinstance(judge, str) else judge))


def scripted_backend(judge="aware", user=None):
    return ScriptedBackend(aloe_script(judge, user))


def mock_roles(n_responders=1, **engine):
    """Roles on the mock backend: user, extractor, responder.0..n-1, judge."""
    opts = dict(backoff_base=0.01, backoff_max=0.02, cache=False, max_retries=1)
    opts.update(engine)
    return prefkit.Roles.from_specs({
        "user": "mock:user-sim", "extractor": "mock:extractor",
        "responder": [f"mock:resp-{k}" for k in range(n_responders)], "judge": "mock:judge"},
        prefkit.BackendOptions(backend="mock", **opts), default_backend="mock")


def run_generate(personas, out, backend, *, n_responders=1, **cfg):
    """``generate`` into ``out`` with the scripted backend; returns the GenerateResult."""
    from prefkit_aloe.generate import GenerateConfig, generate

    cfg.setdefault("turns", 3)
    engine = cfg.pop("engine", {})
    return generate(GenerateConfig(personas=str(personas), **cfg), mock_roles(n_responders, **engine),
                    output_dir=str(out), progress=False, backends={"mock": backend})


@pytest.fixture
def generated_run(tmp_path, personas_file):
    """A finished generate run: 3 conversations x 3 turns, consistent judge (the aware reply wins)."""
    backend = scripted_backend("aware")
    res = run_generate(personas_file, tmp_path / "gen", backend, turns=3, seed=1)
    assert res.status == "done", res
    return tmp_path / "gen"
