"""Faults and bad input: fuzzed configurations, corrupt files, crashing workers (pytest -m faults).

Every test here feeds potforge something broken and checks what a user gets: one PotforgeError
naming the key or the file (and the fix), never a bare Python traceback.
"""

from __future__ import annotations

import copy
import json
import random
import re
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from conftest import TINY_DFT, tiny_config
from potforge.config import key_path, load_config, model_species, validate_config
from potforge.errors import ConfigError, ModelError, PotforgeError
from potforge.structures import starting_structure

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
SHIPPED = [
    "config/config.yaml",
    "config/si.yaml",
    "config/hfo2.yaml",
    "config/hfo2-quick.yaml",
    "tests/data/tiny.yaml",
    "tests/data/tiny_hfo2.yaml",
]
MUTATIONS_PER_CONFIG = 250
# A message that tells the user what to do about a broken file.
FIX_WORDS = re.compile(r"\b(delete|remove|rerun|re-run|regenerate|rebuild|retrain)\b", re.I)


# --- 1. fuzzed configurations -------------------------------------------------------------

Path_ = tuple[Any, ...]  # a key path: str keys of mappings, int indices of lists


@dataclass
class Mutation:
    """One change to a valid configuration, and what validation must make of it."""

    kind: str
    path: Path_  # the key the mutation touched (for a typo: the misspelt key)
    what: str
    anchors: tuple[Path_, ...]  # the error must name one of these key paths (or a key inside)
    must_reject: bool = False

    def __str__(self) -> str:
        return f"[{self.kind}] {self.what}"


def nodes(value: Any, prefix: Path_ = ()) -> list[tuple[Path_, Any]]:
    """Every (path, value) below the root, depth first."""
    out: list[tuple[Path_, Any]] = []
    if isinstance(value, (dict, list)):
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            out.append(((*prefix, key), item))
            out += nodes(item, (*prefix, key))
    return out


def get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def parent(path: Path_) -> Path_:
    return path[:-1]


def kind_of(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "list" if isinstance(value, list) else "dict"


WRONG_TYPES: dict[str, list[Any]] = {
    "str": ["abc", "300", "", "1e3"],
    "int": [7, -3],
    "float": [2.5],
    "bool": [True, False],
    "none": [None],
    "list": [[], [1, "x"], [{"ecut": 1}]],
    "dict": [{"x": 1}, {}],
}
OUT_OF_RANGE_INT = [-1, 0, -(10**6), 10**12]
OUT_OF_RANGE_FLOAT = [-1.0, 0.0, -0.5, 1e-300, 1e9, 1e308, -1e308]
NON_FINITE = [float("nan"), float("inf"), float("-inf")]
NOT_ELEMENTS = ["Xx", "si", "SI", "Q", "", "Uuo", "X", "Zz", "123", "H2", "Hf O"]
LATTICE_LESS = ["Fe", "Cu", "Au"]  # real elements without a default diamond lattice constant
BAD_FILES = [
    "nonexistent/si.extxyz",
    "tests/data/missing.extxyz",
    "",
    "tests",  # a directory
    "README.md",  # a file, not a structure
    "Snakefile",
    "config/config.yaml",
    "x" * 300,  # a name too long for the file system
    "tests/data/si2.extxyz\0",
]
NON_STRING_KEYS = [False, True, None, 1, 2.5]


def typo_of(key: str, rng: random.Random) -> str:
    """A misspelling of a key: a dropped, doubled or swapped letter, a case or separator slip."""
    edits: list[Callable[[str], str]] = [
        lambda k: k + "s",
        lambda k: k.upper(),
        lambda k: k.replace("_", "-") if "_" in k else k[:-1] + k[-1] * 2,
    ]
    if len(key) > 1:
        i = rng.randrange(len(key) - 1)
        edits += [
            lambda k: k[:i] + k[i + 1 :],
            lambda k: k[:i] + k[i] + k[i:],
            lambda k: k[:i] + k[i + 1] + k[i] + k[i + 2 :],
        ]
    for _ in range(10):
        new = rng.choice(edits)(key)
        if new != key and new:
            return new
    return key + "x"


def mutate(doc: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], Mutation]:
    """Return a mutated copy of a valid configuration and the description of the change."""
    doc = copy.deepcopy(doc)
    everything = nodes(doc)
    numbers = [(p, v) for p, v in everything if kind_of(v) in ("int", "float")]
    mappings = [((), doc)] + [(p, v) for p, v in everything if isinstance(v, dict)]
    keyed = [(p, v) for p, v in everything if isinstance(p[-1], str)]
    op = rng.choice(
        ["delete", "delete", "wrong_type", "wrong_type", "typo", "typo", "out_of_range"]
        + ["out_of_range", "non_finite", "element", "file", "non_string_key"]
    )
    if op == "delete":
        path, _ = rng.choice(everything)
        del get(doc, parent(path))[path[-1]]
        anchors = (path, parent(path))
        if parent(path) == ("systems",):
            # A test-set file whose frames carry the deleted system's name is then the bad key.
            anchors += (("validate", "test_set", "structures"),)
        return doc, Mutation(op, path, f"deleted {key_path(path)}", anchors)
    if op == "wrong_type":
        path, old = rng.choice(everything)
        kinds = [k for k in WRONG_TYPES if k != kind_of(old)]
        if kind_of(old) == "float":
            kinds.remove("int")  # an int is a valid number
        new = copy.deepcopy(rng.choice(WRONG_TYPES[rng.choice(kinds)]))
        get(doc, parent(path))[path[-1]] = new
        # None is valid for nullable keys, a number where a number or null is, and a bare `off`
        # (false) means dft.symmetry 'off'; anything else of another type must be refused.
        lenient = new is None or kind_of(new) in ("int", "float") or path[-1] == "symmetry"
        if kind_of(new) == "dict" and not new:
            lenient = True  # {} is a valid (all-defaults) section where a null one is allowed
        what = f"{key_path(path)}: {old!r} -> {new!r}"
        return doc, Mutation(op, path, what, (path, parent(path)), must_reject=not lenient)
    if op == "typo":
        path, _ = rng.choice(keyed)
        holder = get(doc, parent(path))
        new_key = typo_of(path[-1], rng)
        if new_key in holder:
            new_key += "_"
        replaced = {(new_key if k == path[-1] else k): v for k, v in holder.items()}
        holder.clear()
        holder.update(replaced)
        new_path = (*parent(path), new_key)
        # A misspelt system name is just another name; every other mapping has fixed keys.
        must = parent(path) != ("systems",)
        what = f"{key_path(path)} misspelt as {new_key!r}"
        return doc, Mutation(op, new_path, what, (new_path, path, parent(path)), must_reject=must)
    if op in ("out_of_range", "non_finite"):
        path, old = rng.choice(numbers)
        if op == "non_finite":
            new = rng.choice(NON_FINITE)
        else:
            new = rng.choice(OUT_OF_RANGE_INT if kind_of(old) == "int" else OUT_OF_RANGE_FLOAT)
        get(doc, parent(path))[path[-1]] = new
        what = f"{key_path(path)}: {old!r} -> {new!r}"
        return doc, Mutation(op, path, what, (path, parent(path)), must_reject=op == "non_finite")
    if op == "element":
        name = rng.choice(sorted(doc["systems"]))
        where: Path_ = ("systems", name, "structure")
        crystal = get(doc, ("systems", name)).get("validate", {}).get("structure")
        if isinstance(crystal, dict) and "prototype" in crystal and rng.random() < 0.4:
            where = ("systems", name, "validate", "structure")
        spec = get(doc, where)
        if "prototype" not in spec:  # a file-based structure: make it a diamond
            spec.clear()
            spec["prototype"] = "diamond"
        bad = rng.random() < 0.8
        element = rng.choice(NOT_ELEMENTS if bad else LATTICE_LESS)
        spec["element"] = element
        path = (*where, "element")
        what = f"{key_path(path)} = {element!r} (prototype {spec['prototype']})"
        return doc, Mutation(op, path, what, (path, where), must_reject=bad)
    if op == "file":
        name = rng.choice(sorted(doc["systems"]))
        bad = rng.choice(BAD_FILES)
        place = rng.choice(["structure", "validate", "test_set"])
        if place == "test_set":
            # The bad file first: a good Si file beside it would be refused too in an HfO2
            # campaign (no system there has Si), and the first problem is the one named.
            doc.setdefault("validate", {}).setdefault("test_set", {})["structures"] = [
                bad,
                "tests/data/si2.extxyz",
            ]
            path: Path_ = ("validate", "test_set", "structures", 0)
        else:
            if place == "structure":
                where = ("systems", name, "structure")
            else:
                where = ("systems", name, "validate", "structure")
                get(doc, ("systems", name)).setdefault("validate", {})["structure"] = {}
            spec = get(doc, where)
            spec.clear()
            spec["file"] = bad
            path = (*where, "file")
        what = f"{key_path(path)} = {bad[:40]!r}"
        return doc, Mutation(op, path, what, (path,), must_reject=True)
    # non_string_key: a bare `no:`, `off:`, `null:` or number as a key reads as bool/None/number.
    # An existing key is renamed (a system called `no` is otherwise a valid system), or one or
    # two keys of other types are added beside the existing ones.
    where, holder = rng.choice(
        [(p, m) for p, m in mappings if m] + [(("systems",), doc["systems"])]
    )
    keys = rng.sample(NON_STRING_KEYS, rng.choice([1, 1, 2]))
    old_key = rng.choice(sorted(holder))
    if rng.random() < 0.5:
        renamed = {(keys[0] if k == old_key else k): v for k, v in holder.items()}
        holder.clear()
        holder.update(renamed)
        what = f"{key_path((*where, old_key))} renamed to {keys[0]!r}"
    else:
        holder.update({key: copy.deepcopy(holder[old_key]) for key in keys})
        what = f"{key_path(where)}: keys {keys!r} added (values of {old_key!r})"
    return doc, Mutation(op, (*where, keys[0]), what, (where,), must_reject=True)


def names_anchor(message: str, anchors: tuple[Path_, ...]) -> bool:
    """True when the message's key path is an anchor or a key inside one."""
    named = message.split(": ", 1)[0]
    for anchor in anchors:
        text = key_path(anchor)
        if named == text or named.startswith((f"{text}.", f"{text}[")):
            return True
    return False


def judge(mutation: Mutation, doc: dict[str, Any]) -> str | None:
    """Validate a mutated configuration; return what is wrong with the outcome, or None."""
    try:
        config = validate_config(doc)
    except ConfigError as exc:
        message = str(exc)
        if "\n" in message:
            return f"a message of several lines: {message!r}"
        anchors = mutation.anchors
        if mutation.path[2:3] == ("sample",) and key_path(mutation.path[:4]) in message:
            # A generator left with none is named where a task starts from it, and in the text.
            anchors += ((*mutation.path[:2], "explore", "tasks"),)
        if not names_anchor(message, anchors):
            wanted = " or ".join(key_path(a) for a in anchors)
            return f"the message does not name {wanted}: {message!r}"
        return None
    except Exception as exc:  # noqa: BLE001 - a traceback is what this test hunts
        return f"CRASH {type(exc).__name__}: {exc}"
    if mutation.must_reject:
        return "accepted, but this mutation must be refused"
    try:  # what the Snakefile (species) and stage 7 (property crystals) build from it
        model_species(config)
        for system in config["systems"].values():
            starting_structure(system["validate"]["structure"] or system["structure"])
    except Exception as exc:  # noqa: BLE001
        return f"accepted, then CRASH building its structures: {type(exc).__name__}: {exc}"
    return None


@pytest.mark.parametrize("name", SHIPPED, ids=lambda n: Path(n).name)
def test_fuzzed_configuration_is_accepted_or_named_in_one_config_error(name, monkeypatch):
    monkeypatch.chdir(REPO)  # structure files are relative to the repository root
    raw = yaml.safe_load((REPO / name).read_text())
    filled = validate_config(raw)  # the shipped file itself is valid
    rng = random.Random(f"potforge-faults-{name}")
    failures, kinds = [], {}
    for n in range(MUTATIONS_PER_CONFIG):
        base = filled if n % 2 else raw  # keys as written, and every default filled in
        doc, mutation = mutate(base, rng)
        kinds[mutation.kind] = kinds.get(mutation.kind, 0) + 1
        problem = judge(mutation, doc)
        if problem:
            failures.append(f"{mutation}: {problem}")
    assert not failures, f"{len(failures)} of {MUTATIONS_PER_CONFIG} mutations:\n" + "\n".join(
        failures[:25]
    )
    assert sum(kinds.values()) >= 200
    assert all(kinds.get(k, 0) >= 5 for k in ("delete", "wrong_type", "typo", "out_of_range"))
    assert all(kinds.get(k, 0) >= 3 for k in ("non_finite", "element", "file", "non_string_key"))


def broken_texts(text: str, rng: random.Random) -> list[tuple[str, bytes]]:
    """Broken YAML versions of a file's text: cut short, mis-indented, unbalanced, binary."""
    lines = text.splitlines(keepends=True)
    out: list[tuple[str, bytes]] = []
    for _ in range(12):
        cut = rng.randrange(1, len(text))
        out.append((f"cut at character {cut}", text[:cut].encode()))
    for _ in range(6):
        k = rng.randrange(len(lines))
        out.append((f"line {k + 1} deleted", "".join(lines[:k] + lines[k + 1 :]).encode()))
        k = rng.randrange(len(lines))
        tabbed = lines[:k] + ["\t" + lines[k]] + lines[k + 1 :]
        out.append((f"tab before line {k + 1}", "".join(tabbed).encode()))
        k = rng.randrange(len(lines))
        shifted = lines[:k] + [" " + lines[k]] + lines[k + 1 :]
        out.append((f"line {k + 1} indented by one", "".join(shifted).encode()))
    for char in "]}'\":":
        k = text.find(char) if char != ":" else text.find(": ")
        if k >= 0:
            out.append((f"first {char!r} removed", (text[:k] + text[k + 1 :]).encode()))
    out.append(("a stray '{'", text.replace("\n", "\n{", 1).encode()))
    out.append(("random bytes", rng.randbytes(400)))
    out.append(("a NUL byte", text.replace(":", ":\0", 1).encode()))
    out.append(("Latin-1 text", (text + "# caf\xe9\n").encode("latin-1")))
    out.append(("empty", b""))
    out.append(("a list, not a mapping", b"- campaign: x\n- systems: {}\n"))
    out.append(("a recursive alias", b"campaign: x\nsystems: &s {si: *s}\n"))
    out.append(("duplicate alias loop", b"campaign: x\nsystems:\n  si: &a {sample: *a}\n"))
    return out


@pytest.mark.parametrize("name", SHIPPED, ids=lambda n: Path(n).name)
def test_broken_yaml_text_gives_one_config_error_naming_the_file(name, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    text = (REPO / name).read_text()
    rng = random.Random(f"potforge-yaml-{name}")
    path = tmp_path / Path(name).name
    failures = []
    for what, data in broken_texts(text, rng):
        path.write_bytes(data)
        try:
            load_config(path)
        except ConfigError as exc:
            message = str(exc)
            named = message.split(": ", 1)[0]
            if "\n" in message:
                failures.append(f"{what}: a message of several lines: {message!r}")
            elif named == str(path):
                if not re.search(r"YAML|text file", message):
                    failures.append(f"{what}: names the file but not the problem: {message!r}")
            elif not named or any(c.isspace() for c in named):  # else: a key path
                failures.append(f"{what}: names neither the file nor a key: {message!r}")
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{what}: CRASH {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)


# --- 2. the same through Snakemake (dry runs) ---------------------------------------------

SNAKEMAKE_CASES = {
    "deleted required key": (
        "tests/data/tiny.yaml",
        "    structure: {file: tests/data/si2.extxyz}\n",
        "",
        "systems.si.structure: required key is missing",
    ),
    "unknown element": (
        "config/config.yaml",
        "element: Si,",
        "element: Xx,",
        "systems.si.structure.element: unknown element 'Xx'",
    ),
    "infinite cutoff": (
        "config/hfo2.yaml",
        "ecut: 800",
        "ecut: .inf",
        "dft.ecut: must be a finite number, got inf",
    ),
}


@pytest.mark.parametrize("case", sorted(SNAKEMAKE_CASES))
def test_snakemake_dry_run_stops_on_a_broken_config_with_one_line(case, tmp_path):
    source, old, new, expected = SNAKEMAKE_CASES[case]
    text = (REPO / source).read_text()
    assert text.count(old) == 1, f"{source} changed: fix the mutation of this test"
    bad = tmp_path / "broken.yaml"
    bad.write_text(text.replace(old, new))
    proc = subprocess.run(
        ["snakemake", "-n", "--configfile", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    lines = [line for line in out.splitlines() if "invalid configuration: " in line]
    assert len(lines) == 1, out[-3000:]
    assert f"invalid configuration: {expected}" in lines[0]
    assert "Traceback" not in out, out[-3000:]


# --- 3. a corrupt entry of the DFT store ----------------------------------------------------


def _si2(origin: str):
    atoms = bulk("Si", "diamond", a=5.47)
    atoms.info["origin"] = origin
    return atoms


def _overlapping(origin: str):
    atoms = bulk("Si", "diamond", a=5.47)
    atoms.positions[1] = atoms.positions[0]  # two atoms on top of each other: GPAW refuses
    atoms.info["origin"] = origin
    return atoms


def test_a_corrupt_store_entry_is_set_aside_and_recomputed(tmp_path):
    from potforge.dft.label import frame_id, label_frames
    from potforge.io import read_frames, write_frames

    dft = tiny_config(dft=dict(TINY_DFT, ladder=[]))["dft"]
    store = tmp_path / "dft_store"
    good, bad = _si2("faults-store"), _overlapping("faults-store-crash")
    # A labelled entry written as label_frames writes one, then cut short.
    done = store / f"{frame_id(good, dft)}.extxyz"
    entry = good.copy()
    entry.calc = SinglePointCalculator(
        entry, energy=-1.0, free_energy=-1.0, forces=np.zeros((2, 3)), stress=np.zeros(6)
    )
    entry.info.update(frame_id=frame_id(good, dft), iteration=0, scf_iterations=9)
    write_frames(done, [entry])
    assert read_frames(done)[0].get_potential_energy() == -1.0
    data = done.read_bytes()
    done.write_bytes(data[: len(data) * 2 // 3])
    # A quarantine entry left empty (a full disk); its frame crashes fast when recomputed.
    failed = store / f"{frame_id(bad, dft)}.failed.extxyz"
    failed.write_bytes(b"")

    logs: list[str] = []
    report = label_frames([good, bad], dft, store, log=logs.append)

    assert report.computed == 2 and report.reused == 0
    assert len(report.labelled) == 1 and len(report.quarantined) == 1
    assert report.labelled[0].get_potential_energy() != pytest.approx(-1.0)  # really recomputed
    assert len(read_frames(done)) == 1 and len(read_frames(failed)) == 1
    for path, original in ((done, data[: len(data) * 2 // 3]), (failed, b"")):
        aside = sorted(store.glob(f"{path.name.split('.')[0]}*.corrupt"))
        assert len(aside) == 1 and aside[0].read_bytes() == original, aside
        assert any(path.name in line and "corrupt" in line for line in logs), logs


# --- 4. corrupt model files -----------------------------------------------------------------


def _zip_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("model/data.pkl", b"\x80\x04" + bytes(range(256)) * 8)
        archive.writestr("model/version", b"3\n")
    return buf.getvalue()


def _checkpoint_bytes(tmp_path: Path) -> bytes:
    import torch

    path = tmp_path / "real.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(64)}, "hyper_parameters": {}}, path)
    return path.read_bytes()


@pytest.mark.parametrize(
    "name, content",
    [
        ("model.nequip.zip", "truncated zip"),
        ("model.nequip.zip", "empty"),
        ("model.nequip.pt2", "random bytes"),
        ("model.nequip.pt2", "truncated zip"),
        ("best.ckpt", "truncated checkpoint"),
        ("best.ckpt", "random bytes"),
    ],
)
def test_a_corrupt_model_file_gives_one_model_error_naming_it(tmp_path, name, content):
    from potforge.train.models import load_model

    path = tmp_path / "member_0" / name
    path.parent.mkdir()
    data = {
        "truncated zip": _zip_bytes()[:-40],
        "empty": b"",
        "random bytes": random.Random(name).randbytes(4096),
    }.get(content) or _checkpoint_bytes(tmp_path)[:200]
    path.write_bytes(data)
    with pytest.raises(ModelError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: cannot load the"), message
    assert "corrupt" in message and FIX_WORDS.search(message), message
    assert "\n" not in message


# --- 5. a corrupt dataset database and a truncated trajectory -----------------------------


def _database_bytes(tmp_path: Path) -> bytes:
    from potforge.dataset import write_database

    atoms = bulk("Si", "diamond", a=5.47)
    atoms.calc = SinglePointCalculator(atoms, energy=-10.0, forces=np.zeros((2, 3)))
    atoms.info.update(split="train", structure_hash="0123456789abcdef", frame_id="x-y")
    return write_database(tmp_path / "good.db", [atoms], []).read_bytes()


def _assert_names_file_and_fix(exc: BaseException, path: Path) -> None:
    assert isinstance(exc, PotforgeError) and type(exc) is not PotforgeError
    message = str(exc)
    assert str(path) in message and FIX_WORDS.search(message), message
    assert "\n" not in message


@pytest.mark.parametrize("content", ["random bytes", "truncated"])
def test_a_corrupt_dataset_database_is_one_dataset_error(tmp_path, content):
    from potforge.dataset import previous_splits

    good = _database_bytes(tmp_path)
    path = tmp_path / "iter_000" / "dataset" / "ase.db"
    path.parent.mkdir(parents=True)
    path.write_bytes(
        random.Random(3).randbytes(4096) if content == "random bytes" else good[: len(good) // 2]
    )
    with pytest.raises(PotforgeError) as info:
        previous_splits(path)
    _assert_names_file_and_fix(info.value, path)


def _trajectory_text(tmp_path: Path) -> str:
    """Three 2-atom MD frames as potforge writes a trajectory (4 lines each)."""
    from potforge.io import write_frames

    frames = []
    for step in range(3):
        atoms = bulk("Si", "diamond", a=5.47)
        atoms.rattle(0.05, seed=step)
        atoms.info.update(step=10 * step, max_force_dev=0.1)
        frames.append(atoms)
    return write_frames(tmp_path / "whole.extxyz", frames).read_text()


@pytest.mark.parametrize("where", ["count line", "comment line", "atom line"])
def test_a_truncated_trajectory_is_one_error_naming_the_file(tmp_path, where):
    from potforge import io

    text = _trajectory_text(tmp_path)
    lines = text.splitlines(keepends=True)
    start = len("".join(lines[:8]))  # the third of three 2-atom frames: 4 lines each
    cut = {"count line": start + 1, "comment line": start + 40, "atom line": len(text) - 30}
    path = tmp_path / "iter_000" / "explore" / "si" / "000-nvt-600K" / "trajectory.extxyz"
    path.parent.mkdir(parents=True)
    path.write_text(text[: cut[where]])
    with pytest.raises(PotforgeError) as info:
        io.read_frames(path)
    _assert_names_file_and_fix(info.value, path)
    if hasattr(io, "read_trajectories"):  # the reader of select and the test set
        with pytest.raises(PotforgeError) as info:
            io.read_trajectories([path])
        _assert_names_file_and_fix(info.value, path)


# --- 6. weak tests made strong ----------------------------------------------------------------


def test_descriptor_separates_swapped_species_more_than_rattles():
    from potforge.select import structure_descriptor
    from potforge.structures import hfo2_cubic

    species = ["O", "Hf"]
    base = hfo2_cubic()
    symbols = base.get_chemical_symbols()
    hf, o = symbols.index("Hf"), symbols.index("O")
    swapped = base.copy()
    swapped.numbers[[hf, o]] = swapped.numbers[[o, hf]]
    assert swapped.get_chemical_formula() == base.get_chemical_formula()

    def rattled(seed):
        atoms = base.copy()
        atoms.rattle(0.02, seed=seed)
        return structure_descriptor(atoms, species)

    d_base, d_swap = structure_descriptor(base, species), structure_descriptor(swapped, species)
    swap_distance = np.linalg.norm(d_base - d_swap)
    rattle_distance = np.linalg.norm(rattled(1) - rattled(2))
    assert swap_distance > 3 * rattle_distance, (swap_distance, rattle_distance)
    assert swap_distance > np.linalg.norm(d_base - rattled(1))
    # The same structure with its atoms listed in another order is the same descriptor.
    order = np.random.default_rng(0).permutation(len(base))
    assert np.allclose(structure_descriptor(base[order], species), d_base)


def test_a_worker_exiting_non_zero_is_quarantined_and_the_other_frames_labelled(tmp_path):
    from potforge.dft.label import frame_id, label_frames

    dft = tiny_config(dft=dict(TINY_DFT, ladder=[]))["dft"]
    first, crash, last = _si2("fine-1"), _overlapping("crash"), _si2("fine-2")
    last.rattle(0.05, seed=4)
    logs: list[str] = []
    report = label_frames([first, crash, last], dft, tmp_path, log=logs.append)

    assert [a.info["origin"] for a in report.labelled] == ["fine-1", "fine-2"]
    for atoms in report.labelled:
        assert np.isfinite(atoms.get_potential_energy()) and atoms.get_forces().shape == (2, 3)
    assert len(report.quarantined) == 1 and report.computed == 3
    bad = report.quarantined[0]
    reason = bad.info["quarantine_reason"]
    # A real crash (an exit status), not the frame timeout and not an unconverged SCF.
    assert re.fullmatch(r"crashed: GPAW worker exited with status [1-9]\d*", reason), reason
    assert json.loads(bad.info["ladder"])[0]["wall_s"] < dft["frame_timeout_s"]
    assert np.allclose(bad.positions, crash.positions)
    assert (tmp_path / f"{frame_id(crash, dft)}.failed.extxyz").is_file()
    assert report.summary()["quarantine_reasons"] == {frame_id(crash, dft): reason}
    assert any("quarantined" in line and frame_id(crash, dft) in line for line in logs)


def _diverging_member(frames, root: Path, learning_rate: float):
    from potforge.io import write_frames
    from potforge.train.member import train_member
    from potforge.train.nequip_config import SplitFiles

    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_frames(data / "train.extxyz", frames[:12])
    write_frames(data / "validation.extxyz", frames[12:16])
    write_frames(data / "test.extxyz", frames[16:])
    settings = {
        "model": {"num_features": 8, "radial_mlp_width": 16},
        "learning_rate": learning_rate,
        "batch_size": 4,
    }
    out = root / "member"
    return out, lambda: train_member(settings, ["Si"], SplitFiles.in_dir(data), out, 0, 7, epochs=8)


def test_a_diverging_member_is_retried_once_at_a_tenth_of_the_learning_rate(si_frames, tmp_path):
    """Adam at learning rate 1 blows the validation loss up; the retry at 0.1 trains."""
    out, train = _diverging_member(si_frames, tmp_path, 1.0)
    metrics = train()
    assert metrics["retried"] and metrics["retried"]["learning_rate"] == pytest.approx(0.1)
    assert "validation loss" in metrics["retried"]["why"]
    assert np.isfinite(metrics["validation"]["force_rmse_ev_per_a"])
    assert (out / "best.ckpt").is_file()


def test_divergence_names_a_blown_up_or_frozen_validation_loss_and_passes_a_healthy_one():
    from potforge.train.member import FROZEN_EPOCHS, divergence

    healthy = [14.9, 6.7, 0.58, 0.41, 0.41 + 1e-9, 0.39, 0.40, 0.33]
    assert divergence(healthy) is None
    assert "nan" in divergence([3.0, float("nan")])
    assert "over 20 times" in divergence([1.0, 0.5, 25.0])
    frozen = [14.9, 6.7] + [0.5787] * FROZEN_EPOCHS
    assert divergence(frozen) == (
        f"validation loss frozen at 0.5787 for epochs 3-{2 + FROZEN_EPOCHS} "
        "(the network stopped learning)"
    )
    assert divergence(frozen[:-1]) is None  # one epoch short of frozen


def test_a_member_that_diverges_twice_stops_and_leaves_no_checkpoint(si_frames, tmp_path):
    from potforge.errors import TrainingError

    out, train = _diverging_member(si_frames, tmp_path, 1000.0)
    with pytest.raises(TrainingError, match="diverged twice.*lower train.learning_rate"):
        train()
    assert not (out / "best.ckpt").exists()  # nothing for deploy to package


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs: the results folder of a user whose disk fills up."""
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_error_and_leaves_no_partial_file(full_disk):
    from potforge.errors import DiskFullError
    from potforge.io import read_frames, write_frames, write_json

    crystal = bulk("Si", "diamond", a=5.43, cubic=True)
    small = full_disk / "chunk.extxyz"
    write_frames(small, [crystal])
    before = small.read_bytes()
    big = [crystal.repeat((3, 3, 3)) for _ in range(30)]
    with pytest.raises(DiskFullError, match="chunk.extxyz: no space left.*free space"):
        write_frames(small, big)
    assert small.read_bytes() == before  # the earlier file is intact and still reads
    assert len(read_frames(small)) == 1
    with pytest.raises(DiskFullError, match="report.json: no space left"):
        write_json(full_disk / "sub" / "report.json", {"x": "y" * 200_000})
    leftovers = [p.name for p in full_disk.rglob("*") if p.is_file() and p != small]
    assert leftovers == []  # no temporary file a rerun could trust
