"""Training settings: the `train:` section of the campaign config, validated and with defaults."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from potforge.errors import ConfigError


def resolve_train_settings(raw: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """Return the `train:` section (a mapping or JSON text) validated and with schema defaults."""
    from potforge.config import validate_config

    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"train settings: not valid JSON ({exc}); pass the `train` section as JSON"
            ) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"train settings: must be a mapping, got {type(raw).__name__}")
    shell = {"campaign": "train", "systems": {"x": {"structure": {"prototype": "diamond"}}}}
    return validate_config({**shell, "train": dict(raw)})["train"]


def member_seed(campaign_seed: int, member: int) -> int:
    """Return the seed of committee member `member`: distinct per member, stable per campaign."""
    if member < 0:
        raise ConfigError(f"member index: must be >= 0, got {member}")
    digest = hashlib.sha256(f"potforge-member:{campaign_seed}:{member}".encode()).hexdigest()
    return int(digest[:8], 16) % (2**31 - 1)


def member_epochs(settings: Mapping[str, Any], iteration: int, max_iterations: int) -> int:
    """Return the epochs of a member of `iteration`: warm, scouting (before the last) or full."""
    if iteration < 0 or iteration >= max_iterations:
        raise ConfigError(
            f"iteration {iteration}: outside 0..{max_iterations - 1} (loop.max_iterations)"
        )
    if iteration > 0 and settings["warm_start"]:
        return int(settings["warm_epochs"])
    scout = settings.get("scout_epochs")
    if scout is not None and iteration < max_iterations - 1:
        return int(scout)
    return int(settings["epochs"])


def settings_as_trained(
    settings: Mapping[str, Any], protocol_check: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Return `train` settings as trained: stress weight 0 where the protocol check said so."""
    out = dict(settings)
    if protocol_check is not None and not protocol_check.get("train_on_stress", True):
        out["loss"] = {**out.get("loss", {}), "stress": 0.0}
    return out
