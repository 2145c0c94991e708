"""Shared fixtures of the ComPreD tests: the synthetic FIXTURE data (hub schema), written once per session."""

import pytest


@pytest.fixture(scope="session")
def compred_fixture(tmp_path_factory):
    """The ComPreD/SHP fixture (synthetic rows with the hub schema): hub layout + offline mirror."""
    from prefkit_compred.fixture import write

    import datasets

    root = tmp_path_factory.mktemp("compred-fixture")
    # the datasets cache keys local hub-layout folders by path and file names, not content: keep it per session
    datasets.config.HF_DATASETS_CACHE = root / "hf-datasets-cache"
    summary = write(root)
    return {"root": root, "data_dir": root / "data", "hub": root / "hub", "summary": summary}
