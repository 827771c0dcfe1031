"""Check Snakemake profiles: every key a real Snakemake option, every value of the right kind."""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any

import yaml

from potforge.errors import ConfigError

# Resource values: integers, or Python expressions of `attempt` and friends (kept as strings).
RESOURCE_KEYS = ("set-resources", "default-resources")


@functools.lru_cache(maxsize=1)
def snakemake_options() -> dict[str, Any]:
    """Return Snakemake's command-line options by long name (without the dashes)."""
    from snakemake.cli import get_argument_parser

    parser = get_argument_parser()
    options = {}
    for action in parser._actions:  # argparse keeps no public list of actions
        for flag in action.option_strings:
            if flag.startswith("--"):
                options[flag[2:]] = action
    return options


def validate_profile(path: str | Path) -> dict[str, Any]:
    """Read a profile's config.yaml and raise ConfigError naming the first bad key or value."""
    path = Path(path)
    file = path / "config.yaml" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"{file}: no such profile file")
    try:
        profile = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(profile, dict):
        raise ConfigError(f"{file}: must be a mapping of Snakemake options to values")
    options = snakemake_options()
    for key, value in profile.items():
        if key not in options:
            hint = difflib.get_close_matches(key, list(options), n=1)
            tip = f"; did you mean '{hint[0]}'?" if hint else ""
            raise ConfigError(f"{file}: {key}: not a Snakemake option{tip}")
        _check_value(file, key, value, options[key])
    return profile


def _check_value(file: Path, key: str, value: Any, action: Any) -> None:
    where = f"{file}: {key}"
    if key in ("set-threads",):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: must map rule names to thread counts")
        for rule, threads in value.items():
            if not isinstance(threads, int) or threads < 1:
                raise ConfigError(f"{where}.{rule}: must be a positive integer, got {threads!r}")
        return
    if key in RESOURCE_KEYS:
        entries = value.items() if key == "set-resources" else [(None, value)]
        for rule, resources in entries:
            sub = f"{where}.{rule}" if rule else where
            if not isinstance(resources, dict):
                raise ConfigError(f"{sub}: must map resource names to values")
            for name, res in resources.items():
                _check_resource(f"{sub}.{name}", res)
        return
    if getattr(action, "nargs", None) == 0:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, got {value!r}")
        return
    wanted = getattr(action, "type", None)
    if wanted is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: must be an integer, got {value!r}")
    if callable(wanted) and not isinstance(value, dict | list):
        try:
            wanted(str(value))
        except Exception:
            kind = getattr(wanted, "__name__", "value").removeprefix("parse_")
            raise ConfigError(f"{where}: not a valid {kind} value: {value!r}") from None
    choices = getattr(action, "choices", None)
    if choices and value not in choices:
        raise ConfigError(f"{where}: must be one of {', '.join(map(str, choices))}; got {value!r}")


def _check_resource(where: str, value: Any) -> None:
    """A resource is a non-negative integer, a quoted string, or an expression that compiles."""
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{where}: must be an integer, a quoted string or an expression")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(f"{where}: must be >= 0, got {value}")
        return
    if isinstance(value, str):
        try:
            compile(value, where, "eval")
        except SyntaxError:
            raise ConfigError(
                f"{where}: {value!r} is neither a number nor a Python expression "
                "(quote strings twice, e.g. \"'srun'\")"
            ) from None
        return
    raise ConfigError(f"{where}: must be a number, a quoted string or an expression")
