"""Load and validate a campaign configuration against the JSON schema, filling defaults."""

from __future__ import annotations

import copy
import difflib
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from potforge.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


@functools.lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """Return the campaign configuration schema."""
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML campaign file and return it validated, with defaults filled in."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); give a YAML file"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    return validate_config(raw)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Return a YAML error as one line: what is wrong and where (line, column)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def validate_config(raw: Any) -> dict[str, Any]:
    """Validate a configuration mapping; return a copy with defaults, or raise one ConfigError."""
    schema = load_schema()
    if not isinstance(raw, Mapping):
        raise ConfigError("configuration: must be a mapping of keys to values")
    config = copy.deepcopy(dict(raw))
    _check_keys(config, [], set())
    dft = config.get("dft")
    if isinstance(dft, dict) and dft.get("symmetry") is False:
        dft["symmetry"] = "off"  # YAML 1.1 reads a bare `off` as false
    _raise_first_error(config, schema)
    _fill_defaults(config, schema, schema)
    _raise_first_error(config, schema)
    _check_finite(config, [])
    _check_semantics(config)
    return config


def _check_keys(value: Any, parts: list[Any], seen: set[int]) -> None:
    """Refuse mapping keys that are not strings (YAML reads bare no, off, 1 or null as such)."""
    if isinstance(value, (dict, list)):
        if id(value) in seen:  # a YAML alias refers to its own parent
            raise ConfigError(f"{key_path(parts)}: refers to itself (a recursive YAML alias)")
        seen = seen | {id(value)}
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(
                    f"{key_path(parts)}: every key must be a string, got "
                    f"{type(key).__name__} {key!r} (YAML reads a bare yes, no, on, off, null or "
                    "number as such: quote the key)"
                )
            _check_keys(item, [*parts, key], seen)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_keys(item, [*parts, index], seen)


def _check_finite(value: Any, parts: list[Any]) -> None:
    """Refuse NaN and infinite numbers, which every range check of the schema lets through."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key_path(parts)}: must be a finite number, got {value!r}")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, [*parts, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, [*parts, index])


def key_path(parts: Iterable[Any]) -> str:
    """Join schema path parts as 'a.b[0].c'."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "configuration"


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema())


def _raise_first_error(config: dict[str, Any], schema: dict[str, Any]) -> None:
    validator = _validator() if schema is load_schema() else jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.path))
    )
    if errors:
        raise ConfigError(_describe(_deepest(errors[0])))


def _deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For oneOf/anyOf failures, descend to the most specific sub-error when there is one."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        deeper = [e for e in error.context if len(e.absolute_path) > len(error.absolute_path)]
        if deeper:
            return _deepest(max(deeper, key=lambda e: len(e.absolute_path)))
    return error


def _describe(error: jsonschema.ValidationError) -> str:
    """Turn a jsonschema error into 'key.path: what is wrong, got X'."""
    where = key_path(error.absolute_path)
    value = error.instance
    kind, arg = error.validator, error.validator_value
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed), key=str)
        msgs = []
        for key in extra:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            tip = (
                f"; did you mean '{hint[0]}'?" if hint else f"; allowed keys: {', '.join(allowed)}"
            )
            msgs.append(f"{key_path([*error.absolute_path, key])}: unknown key{tip}")
        return msgs[0] if msgs else f"{where}: unknown keys"
    if kind == "required":
        missing = [k for k in arg if k not in value]
        return f"{key_path([*error.absolute_path, missing[0]])}: required key is missing"
    if kind == "type":
        wanted = arg if isinstance(arg, str) else " or ".join(arg)
        return f"{where}: must be of type {wanted}, got {type(value).__name__} {value!r}"
    bounds = {
        "minimum": ">=",
        "exclusiveMinimum": ">",
        "maximum": "<=",
        "exclusiveMaximum": "<",
    }
    if kind in bounds:
        return f"{where}: must be {bounds[kind]} {arg}, got {value!r}"
    if kind == "enum":
        return f"{where}: must be one of {', '.join(map(str, arg))}; got {value!r}"
    if kind == "minProperties":
        return f"{where}: must define at least {arg} entr{'y' if arg == 1 else 'ies'}, got none"
    if kind == "minItems":
        return f"{where}: must list at least {arg} item(s), got {len(value)}"
    if kind == "maxItems" or (kind == "minItems" and arg == error.schema.get("maxItems")):
        return f"{where}: must list at most {arg} item(s), got {len(value)}"
    if kind == "pattern":
        return f"{where}: {value!r} does not match the pattern {arg}"
    if kind == "oneOf" and where.endswith("structure"):
        return f"{where}: give exactly one of 'prototype' or 'file'"
    return f"{where}: {error.message}"


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        merged = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _resolve(merged, root)
    return schema


def _fill_defaults(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> None:
    """Insert schema defaults into mappings, recursing through properties and items."""
    schema = _resolve(schema, root)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key, sub in props.items():
            sub_resolved = _resolve(sub, root)
            if key not in value and "default" in sub_resolved:
                value[key] = copy.deepcopy(sub_resolved["default"])
            if key in value:
                _fill_defaults(value[key], sub_resolved, root)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                if key not in props:
                    _fill_defaults(item, extra, root)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _fill_defaults(item, schema["items"], root)


def start_problem(start: str, sample: Mapping[str, Any], where: str) -> str | None:
    """Return why an exploration task of system `where` cannot start from `start`, or None."""
    from potforge.sampling import CRYSTAL_START, SAMPLE_KEYS, generator_count

    if start == CRYSTAL_START or generator_count(sample, start) > 0:
        return None
    key = f"{where}.sample.{SAMPLE_KEYS.get(start, start)}"
    return f"'{start}' needs at least one sampled {start} structure; {key} makes none"


def _check_semantics(config: dict[str, Any]) -> None:
    """Checks JSON Schema cannot express: elements, files, sums and orderings."""
    from ase.data import chemical_symbols

    split = config["dataset"]["split"]
    total = sum(split.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"dataset.split: fractions must sum to 1, got {total:g}")
    for name, system in config["systems"].items():
        where = f"systems.{name}"
        _check_structure(system["structure"], f"{where}.structure")
        crystal = system.get("validate", {}).get("structure")
        if crystal is not None:
            if ("prototype" in crystal) == ("file" in crystal):
                raise ConfigError(
                    f"{where}.validate.structure: give exactly one of 'prototype' or 'file' "
                    "(or null for the starting structure)"
                )
            _check_structure(crystal, f"{where}.validate.structure")
        vacancy = system["sample"]["vacancy_species"]
        if vacancy is not None and vacancy not in chemical_symbols[1:]:
            raise ConfigError(f"{where}.sample.vacancy_species: unknown element '{vacancy}'")
        trust = system["trust"]
        if trust["lo"] >= trust["hi"]:
            raise ConfigError(
                f"{where}.trust: lo must be below hi, got lo={trust['lo']} hi={trust['hi']}"
            )
        for i, task in enumerate(system["explore"]["tasks"]):
            if task["ensemble"] == "nvt" and task.get("pressures", [0.0]) != [0.0]:
                raise ConfigError(
                    f"{where}.explore.tasks[{i}].pressures: only an npt task takes pressures"
                )
            problem = start_problem(task.get("start", "crystal"), system["sample"], where)
            if problem:
                raise ConfigError(f"{where}.explore.tasks[{i}].start: {problem}")
    structures = config.get("validate", {}).get("test_set", {}).get("structures", [])
    for i, path in enumerate(structures):
        frames, problem = _read_frames(path, ":")
        problem = problem or _frames_problem(path, frames, config)
        if problem:
            raise ConfigError(f"validate.test_set.structures[{i}]: {problem}")


def _check_structure(spec: Mapping[str, Any], where: str) -> None:
    """Check a `structure` mapping: a known element and buildable prototype, or a readable file."""
    from ase.data import chemical_symbols

    if "prototype" in spec:
        element = spec.get("element", "Si")
        if element not in chemical_symbols[1:]:
            raise ConfigError(f"{where}.element: unknown element {element!r}")
        problem = _prototype_problem(spec["prototype"], element, spec.get("a"))
        if problem:
            raise ConfigError(f"{where}: {problem}")
    else:
        problem = _file_problem(spec["file"])
        if problem:
            raise ConfigError(f"{where}.file: {problem}")


@functools.lru_cache(maxsize=64)
def _prototype_problem(prototype: str, element: str, a: float | None) -> str | None:
    """Return why a prototype cannot be built (a diamond of an element without a lattice)."""
    from potforge.errors import StructureError
    from potforge.structures import starting_structure

    spec = {"prototype": prototype, "element": element}
    if a is not None:
        spec["a"] = a
    try:
        starting_structure(spec)
    except (StructureError, ValueError) as exc:
        return str(exc)
    return None


def _file_problem(path: str) -> str | None:
    """Return why a structure file cannot be used, or None when it reads as a 3D cell."""
    return _read_frames(path, 0)[1]


def _read_frames(path: str, index: int | str) -> tuple[list[Any], str | None]:
    """Read a structure file's frames; return them and None, or [] and why it cannot be used."""
    from potforge.errors import StructureError
    from potforge.structures import read_structure_frames

    try:
        return read_structure_frames(path, index), None
    except StructureError as exc:
        return [], str(exc)
    except OSError as exc:  # a name too long for the file system, a permission error...
        return [], f"cannot open '{path}': {exc.strerror or type(exc).__name__}"


def _frames_problem(path: str, frames: Sequence[Any], config: Mapping[str, Any]) -> str | None:
    """Return why a test-set file's frames do not fit the campaign (system, elements), or None."""
    systems, species = config["systems"], model_species(config)
    for k, atoms in enumerate(frames):
        name = atoms.info.get("system")
        if name is not None and name not in systems:
            known = ", ".join(sorted(systems))
            return f"'{path}' frame {k} is of system {name!r}; this campaign has {known}"
        alien = sorted(set(atoms.get_chemical_symbols()) - set(species))
        if alien:
            return (
                f"'{path}' frame {k} holds {', '.join(alien)}, which no system of this campaign "
                f"has (the model knows {', '.join(species)})"
            )
    return None


def model_species(config: Mapping[str, Any]) -> list[str]:
    """Return the model's type names: every element of every system, ordered by atomic number."""
    from ase.data import atomic_numbers

    from potforge.structures import starting_structure

    found: set[str] = set()
    for system in config["systems"].values():
        found.update(starting_structure(system["structure"]).get_chemical_symbols())
    return sorted(found, key=lambda s: atomic_numbers[s])


def schema_reference() -> str:
    """Render every configuration key, its type, default and meaning as a Markdown table."""
    schema = load_schema()
    rows: list[tuple[str, str, str, str]] = []

    def walk(node: dict[str, Any], path: str) -> None:
        node = _resolve(node, schema)
        kind = node.get("type", "object" if "properties" in node else "")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        if "enum" in node:
            kind = " \\| ".join(map(str, node["enum"]))
        default = (
            json_default(node["default"])
            if "default" in node
            else "required" * (path.split(".")[-1] in _required_at(path))
        )
        if path and not path.endswith("[]"):
            rows.append((path, kind, default, " ".join(node.get("description", "").split())))
        for key, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{key}" if path else key)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, f"{path}.<name>")
        items = node.get("items")
        if isinstance(items, dict) and "properties" in _resolve(items, schema):
            walk(items, f"{path}[]")

    def _required_at(path: str) -> list[str]:
        node: Any = schema
        for part in path.split(".")[:-1]:
            node = _resolve(node, schema)
            if part == "<name>":
                node = node["additionalProperties"]
            else:
                node = node.get("properties", {}).get(part.removesuffix("[]"), {})
                if part.endswith("[]"):
                    node = _resolve(node, schema).get("items", {})
        return _resolve(node, schema).get("required", [])

    walk(schema, "")
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for path, kind, default, text in rows:
        lines.append(f"| `{path}` | {kind} | {default} | {text} |")
    return "\n".join(lines) + "\n"


def json_default(value: Any) -> str:
    """Format a schema default for the reference table."""
    import json

    return f"`{json.dumps(value)}`"


README_HEAD = """# Campaign configuration reference

A campaign is one YAML file (`config/config.yaml` is the default; pass another with
`snakemake --configfile FILE`). It holds science only: resources (threads, memory, GPUs,
partitions) live in `profiles/`. The file is validated against
`workflow/schemas/config.schema.yaml` before any job starts: unknown keys, wrong types and
out-of-range values stop the run with one message naming the key. Keys left out take the
defaults below. `potforge check-config FILE --print` shows a file with every default filled in.

Structure files are read relative to the directory Snakemake runs in (the repository root).
Pressures are in bar, temperatures in Kelvin, energies in eV, lengths in Angstrom.

This page is generated from the schema (`potforge config-reference > config/README.md`); a test
checks that it is current.

"""


def config_readme() -> str:
    """Return config/README.md: an introduction and the reference table."""
    return README_HEAD + schema_reference()
