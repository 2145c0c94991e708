"""Issue 15 (persona items 2-10): the paper's defaults, metric definitions and judge protocols."""

from __future__ import annotations

import json

import pytest

from prefkit.errors import UsageError


def _ok(r):
    assert r.exit_code == 0, r.output
    return r.json()


# ------------------------------------------------------------------------------------------------ 8. --stop
def test_user_stops_are_added_to_the_builtin_ones(prefkit_cli, persona_data, tmp_path):
    from prefkit.testing import MockBackend

    from prefkit_persona.inference import REQUEST_STOPS

    mock = MockBackend(responder=lambda req: "The user is brief and prefers short answers. END and more")
    with mock.installed():
        out = _ok(prefkit_cli("infer-personas", "--split", "Mnemonic", "--data-dir", persona_data, "--limit", 1,
                              "--backend", "mock", "--stop", "END", "--stop", "END", "-o", tmp_path / "pi",
                              "--json"))
    assert out["personas"] == 2 and mock.requests
    for req in mock.requests:
        assert req.stop == [*REQUEST_STOPS, "END"]  # the built-in ones kept, the user's added, no repeats
    rows = [json.loads(x) for x in (tmp_path / "pi/results.jsonl").read_text().splitlines()]
    # the user's stop also cuts the stored persona (a backend that ignores stops cannot leak past it)
    assert {r["persona"] for r in rows} == {"The user is brief and prefers short answers."}


def test_without_user_stops_the_builtin_ones_are_sent():
    from prefkit_persona.inference import REQUEST_STOPS, request_stops

    assert request_stops(None) == REQUEST_STOPS and request_stops([]) == REQUEST_STOPS
    assert request_stops(["\nUser:", "\n==="]) == [*REQUEST_STOPS, "\nUser:"]


# ------------------------------------------------------------------------------------------------ 6. system personas
def test_system_personas_are_the_papers():
    from prefkit_persona.tailoring.formats import inference_persona, system_persona_for

    assert system_persona_for("BeaverTails") == \
        "The user is meticulous and prefers responses that cover multiple, diverse angles."
    assert system_persona_for("Mnemonic") == \
        "The user prefers indirect, step-by-step mnemonics that capture the essence of the vocabulary term."
    assert system_persona_for("Anthropic HHH") == ("The user is solution-focused, results-oriented, and "
                                                   "fact-oriented, and prefers responses that cover varied angles.")
    assert inference_persona({"prompt": "x"}, "system", "Mnemonic") == system_persona_for("Mnemonic")
    assert system_persona_for("BeaverTails", "The user is a chef.") == "The user is a chef."
