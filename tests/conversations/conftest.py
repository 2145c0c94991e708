import pytest


@pytest.fixture(autouse=True)
def _isolated(prefkit_home, monkeypatch):
    """Own PREFKIT_HOME (cache, keys), no real API keys or provider URLs, no stray .env."""
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "CO_API_KEY", "COHERE_API_KEY", "PREFKIT_PRICES",
                "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "CO_API_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(prefkit_home)
    yield prefkit_home


def fast(**kw):
    """Engine options with quick backoff and no cache, for tests."""
    from prefkit import BackendOptions

    base = dict(backoff_base=0.01, backoff_max=0.05, cache=False)
    base.update(kw)
    return BackendOptions(**base)
