"""Every name the public API promises resolves (plugins rely on them)."""

import prefkit
import prefkit.testing


def test_every_public_name_resolves():
    for name in prefkit.__all__:
        assert getattr(prefkit, name) is not None, name
    for name in prefkit.testing.__all__:
        assert getattr(prefkit.testing, name) is not None, name


def test_unknown_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError):
        prefkit.no_such_thing  # noqa: B018
