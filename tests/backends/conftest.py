import pytest


@pytest.fixture(autouse=True)
def _isolated(prefkit_home, monkeypatch):
    """Every backend test gets its own PREFKIT_HOME (cache, keys) and no real API keys."""
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "CO_API_KEY", "COHERE_API_KEY", "PREFKIT_PRICES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(prefkit_home)  # no stray .env from the project
    from prefkit.backends import pricing

    pricing._user_loaded = False
    pricing._user.clear()
    yield prefkit_home


def fast(**kw):
    """BackendOptions with quick backoff, for tests."""
    from prefkit.backends import BackendOptions

    base = dict(backoff_base=0.01, backoff_max=0.05, cache=False)
    base.update(kw)
    return BackendOptions(**base)
