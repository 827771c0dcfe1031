"""Configuration and profile validation: shipped files pass, broken ones name the bad key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from potforge.config import load_config, model_species, validate_config
from potforge.errors import ConfigError
from potforge.profiles import validate_profile

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "config").glob("*.yaml")) + [REPO / "tests" / "data" / "tiny.yaml"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_validates(path, monkeypatch):
    monkeypatch.chdir(REPO)
    config = load_config(path)
    assert config["dft"]["ecut"] > 0
    assert config["train"]["committee"] >= 2
    for system in config["systems"].values():
        assert system["trust"]["lo"] < system["trust"]["hi"]


def test_defaults_are_filled_and_default_protocol_matches_issue():
    config = load_config(REPO / "config" / "config.yaml")
    dft = config["dft"]
    assert (dft["xc"], dft["ecut"], dft["kpt_density"], dft["gamma"], dft["smearing"]) == (
        "PBE",
        300,
        2.5,
        True,
        0.1,
    )
    assert load_config(REPO / "config" / "hfo2.yaml")["dft"]["ecut"] == 800
    assert config["dataset"]["split"] == {"train": 0.8, "validation": 0.1, "test": 0.1}


def test_model_species_of_hfo2_campaign_is_hf_then_o():
    config = load_config(REPO / "config" / "hfo2.yaml")
    assert model_species(config) == ["O", "Hf"]


BASE = {
    "campaign": "t",
    "systems": {"si": {"structure": {"prototype": "diamond"}}},
}


def _broken(patch):
    raw = copy.deepcopy(BASE)
    patch(raw)
    return raw


BROKEN = {
    "wrong top-level key": (lambda c: c.update(campain="x"), "campain: unknown key"),
    "wrong type": (lambda c: c.update(dft={"ecut": "high"}), "dft.ecut: must be of type number"),
    "negative cutoff": (lambda c: c.update(dft={"ecut": -300}), "dft.ecut: must be > 0, got -300"),
    "unknown element": (
        lambda c: c["systems"]["si"]["structure"].update(element="Xx"),
        "systems.si.structure.element: unknown element 'Xx'",
    ),
    "unknown vacancy element": (
        lambda c: c["systems"]["si"].update(sample={"vacancy_species": "Xx"}),
        "systems.si.sample.vacancy_species: unknown element 'Xx'",
    ),
    "missing structure file": (
        lambda c: c["systems"]["si"].update(structure={"file": "nope/missing.xyz"}),
        "systems.si.structure.file: no such structure file",
    ),
    "empty system list": (lambda c: c.update(systems={}), "systems: must define at least 1"),
    "typo in a nested key": (
        lambda c: c.update(train={"model": {"num_layer": 3}}),
        "train.model.num_layer: unknown key; did you mean 'num_layers'?",
    ),
    "split not summing to one": (
        lambda c: c.update(dataset={"split": {"train": 0.5}}),
        "dataset.split: fractions must sum to 1",
    ),
    "trust window upside down": (
        lambda c: c["systems"]["si"].update(trust={"lo": 0.3, "hi": 0.1}),
        "systems.si.trust: lo must be below hi",
    ),
    "both prototype and file": (
        lambda c: c["systems"]["si"]["structure"].update(file="x.xyz"),
        "systems.si.structure: give exactly one of 'prototype' or 'file'",
    ),
    "missing campaign": (lambda c: c.pop("campaign"), "campaign: required key is missing"),
    "bad ladder step": (
        lambda c: c.update(dft={"ladder": [{"mixer_beta": 2}]}),
        "dft.ladder[0].mixer_beta: must be <= 1, got 2",
    ),
    "task starting from an unsampled structure": (
        lambda c: c["systems"]["si"].update(
            explore={"tasks": [{"ensemble": "nvt", "temperatures": [900], "start": "molten"}]}
        ),
        "systems.si.explore.tasks[0].start: 'molten' needs at least one sampled molten structure",
    ),
    "unknown ensemble": (
        lambda c: c["systems"]["si"].update(
            explore={"tasks": [{"ensemble": "nve", "temperatures": [300]}]}
        ),
        "systems.si.explore.tasks[0].ensemble: must be one of nvt, npt",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN), ids=str)
def test_broken_config_gives_one_message_naming_the_key(case):
    patch, expected = BROKEN[case]
    with pytest.raises(ConfigError) as info:
        validate_config(_broken(patch))
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_broken_structure_file_is_named(tmp_path):
    bad = tmp_path / "broken.extxyz"
    bad.write_text("3\nnot a comment line with a lattice\nSi 0 0\n")
    raw = _broken(lambda c: c["systems"]["si"].update(structure={"file": str(bad)}))
    with pytest.raises(ConfigError, match=r"systems\.si\.structure\.file: cannot read"):
        validate_config(raw)


@pytest.mark.parametrize("name", ["default", "local", "slurm"])
def test_every_profile_validates(name):
    profile = validate_profile(REPO / "profiles" / name)
    assert profile


@pytest.mark.parametrize(
    "profile, expected",
    [
        ({"jobs": "many"}, "jobs: not a valid jobs value: 'many'"),
        ({"latency-wiat": 5}, "latency-wiat: not a Snakemake option; did you mean 'latency-wait'?"),
        ({"keep-going": "yes"}, "keep-going: must be true or false"),
        ({"set-resources": {"label": {"runtime": "60 *"}}}, "set-resources.label.runtime"),
        ({"set-threads": {"train_member": 0}}, "set-threads.train_member: must be a positive"),
        ({"retries": "two"}, "retries: must be an integer"),
    ],
)
def test_bad_profile_value_is_named(tmp_path, profile, expected):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(profile))
    with pytest.raises(ConfigError) as info:
        validate_profile(tmp_path)
    assert expected in str(info.value)


def test_config_reference_is_current_and_every_key_is_described():
    from potforge.config import config_readme

    text = config_readme()
    assert (REPO / "config" / "README.md").read_text() == text, (
        "config/README.md is stale: run `potforge config-reference > config/README.md`"
    )
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    undocumented = [row.split("|")[1].strip() for row in rows if row.rstrip().endswith("|  |")]
    assert not undocumented, f"schema keys without a description: {undocumented}"
    for key in ("dft.ecut", "train.committee", "systems.<name>.trust.hi", "loop.max_iterations"):
        assert f"`{key}`" in text
