"""Training presets: named sets of defaults that plugins register (a paper's settings, say).

::

    import prefkit

    @prefkit.hookimpl
    def register_training_presets(register):
        register(prefkit.TrainingPreset(
            "my-paper", "The settings of My Paper (2025), table 3.",
            settings={"epochs": 3, "lora_r": 8},           # every trainer that has the setting
            per_trainer={"dpo": {"beta": 0.05}},           # one trainer only (wins over settings)
            source="My Paper (2025), appendix B"))

``prefkit train sft --preset my-paper ...`` (or ``train_chain(..., preset="my-paper")``,
``prefkit.train(..., preset="my-paper")``) starts from those values; a ``--config`` file
overrides the preset and flags override both. ``prefkit train presets`` lists every preset
with its values and the plugin that registered it; the run manifest records the preset and
where each setting came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError


@dataclass
class TrainingPreset:
    """A named set of training defaults.

    ``settings``: values for every trainer whose config (or the model config) has that field
    (a setting no trainer has is an error at registration); ``per_trainer``:
    ``{trainer name: {setting: value}}`` for one trainer only (wins over ``settings``; must be
    that trainer's settings). ``source``: where the values come from (paper, table, repository).
    """

    name: str
    description: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    per_trainer: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""

    def values_for(self, trainer: Any) -> dict[str, Any]:
        """The preset's values for ``trainer`` (a trainer object with ``name`` and ``config_class``)."""
        from .config import TrainModelConfig

        known = set(trainer.config_class.field_names()) | set(TrainModelConfig.field_names())
        out = {k: v for k, v in self.settings.items() if k in known}
        own = self.per_trainer.get(trainer.name, {})
        bad = sorted(set(own) - known)
        if bad:
            raise UsageError(f"preset {self.name!r}: {', '.join(bad)} is not a setting of trainer {trainer.name!r}")
        out.update(own)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "settings": dict(self.settings),
                "per_trainer": {k: dict(v) for k, v in self.per_trainer.items()}, "source": self.source}


def get_preset(name: str) -> TrainingPreset:
    """The preset registered as ``name`` (one clear error listing the known ones otherwise)."""
    from ..plugins import registry

    try:
        return registry("training_presets").get(name)
    except UsageError:
        known = ", ".join(sorted(registry("training_presets").names())) or "none"
        raise UsageError(f"unknown training preset {name!r} (known: {known}; see `prefkit train presets`)") from None


def list_presets() -> list[dict[str, Any]]:
    """Every registered preset: its values and the plugin that registered it."""
    from ..plugins import registry

    return [{**e.obj.to_dict(), "plugin": e.plugin} for e in registry("training_presets").entries()]


def preset_values(preset: str | TrainingPreset | None, trainer: Any) -> tuple[str | None, dict[str, Any]]:
    """``(preset name, its values for trainer)``; ``(None, {})`` without a preset."""
    if preset is None or preset == "":
        return None, {}
    p = get_preset(preset) if isinstance(preset, str) else preset
    return p.name, p.values_for(trainer)
