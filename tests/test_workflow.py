"""The Snakemake workflow: dry runs of every shipped config, a clear error for a bad one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import workflow_copy

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "config").glob("*.yaml")) + [REPO / "tests" / "data" / "tiny.yaml"]


def snakemake(*args, cwd=REPO, check=True):
    proc = subprocess.run(
        ["snakemake", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_dry_run_of_every_shipped_config(config, tmp_path):
    out = snakemake("-n", "--configfile", str(config), "--directory", str(REPO))
    text = out.stdout + out.stderr
    for rule in ("sample", "label", "dataset", "train_member", "explore", "select", "final"):
        assert rule in text


def test_bad_config_stops_before_any_job_with_one_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (REPO / "tests" / "data" / "tiny.yaml").read_text().replace("ecut: 200", "ecut: -300")
    )
    proc = snakemake("-n", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "invalid configuration: dft.ecut: must be > 0, got -300" in text
    assert "rule sample" not in text


@pytest.mark.slow
def test_iteration_zero_runs_for_real_and_a_rerun_does_nothing(tmp_path):
    work = workflow_copy(tmp_path / "repo")
    target = "results/tiny/iter_000/dataset/summary.json"  # the whole loop: test_campaign.py
    snakemake("--configfile", "tests/data/tiny.yaml", "-c2", target, cwd=work)
    data = work / "results" / "tiny" / "iter_000" / "dataset"
    assert (data / "ase.db").is_file() and (data / "summary.json").is_file()
    again = snakemake("--configfile", "tests/data/tiny.yaml", "-c2", "-n", target, cwd=work)
    assert "Nothing to be done" in again.stdout + again.stderr
