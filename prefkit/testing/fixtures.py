"""pytest fixtures for prefkit and its plugins (loaded through the ``pytest11`` entry point)."""

from __future__ import annotations

import pytest


@pytest.fixture
def prefkit_home(tmp_path):
    """An isolated PREFKIT_HOME and runs directory under ``tmp_path``."""
    from prefkit.testing.core import isolated_home

    with isolated_home(tmp_path) as p:
        yield p


@pytest.fixture
def prefkit_cli(prefkit_home):
    """Run ``prefkit`` in-process: ``prefkit_cli("datasets", "--json")`` → CliResult."""
    from prefkit.testing.core import cli

    return cli


@pytest.fixture(scope="session")
def shared_data():
    """``../shared/data`` (skips the test when it is absent)."""
    from prefkit.testing.core import shared_data_dir

    d = shared_data_dir()
    if d is None:
        pytest.skip("the shared data folder (../shared/data) is not present")
    return d


@pytest.fixture(scope="session")
def persona_data(shared_data):
    """``../shared/data/persona`` — the persona-inference/tailoring offline mirror."""
    d = shared_data / "persona"
    if not d.is_dir():
        pytest.skip("../shared/data/persona is not present")
    return d


def _optional(module: str):
    """Fixtures of the layers (backends, models) live in their own modules."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None


for _mod in ("prefkit.testing.backend_fixtures", "prefkit.testing.model_fixtures"):
    _m = _optional(_mod)
    if _m is not None:  # re-export the module's public names (its fixtures) so pytest sees them
        globals().update({k: v for k, v in vars(_m).items() if k in getattr(_m, "__all__", ())})
