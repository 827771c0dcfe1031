"""The Snakemake workflow: dry runs of every shipped config, a clear error for a bad one."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import workflow_copy

REPO = Path(__file__).resolve().parents[1]
CONFIG = "config/config.yaml"
CONFIGS = sorted((REPO / "config").glob("*.yaml")) + sorted(
    (REPO / "tests" / "data").glob("*.yaml")
)


def snakemake(*args, cwd=REPO, check=True):
    proc = subprocess.run(
        ["snakemake", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_dry_run_of_every_shipped_config(config, tmp_path):
    # In a copy: results of an earlier run in the checkout would leave nothing to do.
    out = snakemake("-n", "--configfile", str(config), cwd=workflow_copy(tmp_path))
    text = out.stdout + out.stderr
    for rule in ("sample", "label", "dataset", "train_member", "explore", "select", "final"):
        assert rule in text


def test_loop_target_plans_the_loop_without_stage_7(tmp_path):
    # `snakemake loop`: what the speed benchmark times (benchmarks/speed_config.yaml) against a
    # main that had no validation stage; only the loop's inputs from stage 7 remain (the stress
    # check decides whether to train on stress; the test-set draw keeps its frames out).
    config = REPO / "benchmarks" / "speed_config.yaml"
    out = snakemake("-n", "loop", "--configfile", str(config), cwd=workflow_copy(tmp_path))
    text = out.stdout + out.stderr
    planned = set(re.findall(r"^(?:rule|checkpoint) (\w+):", text, re.M))
    assert {"sample", "label", "train_member", "explore", "select"} <= planned
    assert not planned & {"label_test_set", "dft_reference", "validate_iteration", "final"}
    assert "results/si-speed/iter_000" in text


def job_field(text: str, rule: str, field: str) -> str | None:
    """A field (`resources`, `priority`) printed for the first job of `rule` in a dry run."""
    block = re.split(r"\n(?:\n|\[)", text.split(f"rule {rule}:", 1)[1], maxsplit=1)[0]
    lines = [x for x in block.splitlines() if x.strip().startswith(f"{field}:")]
    return lines[0].split(f"{field}:", 1)[1].strip() if lines else None


def job_resources(text: str, rule: str) -> dict[str, str]:
    """The `resources:` line Snakemake printed for the first job of `rule` in a dry run."""
    items = job_field(text, rule, "resources").split(", ")
    return dict(item.strip().split("=", 1) for item in items)


def test_the_loop_goes_before_labelling_the_test_set(tmp_path):
    # Nothing in the loop waits for the test set's labels: they fill the cores the loop leaves idle.
    # The final deploy is planned once the loop has stopped: asked for here by its file.
    deployed = "results/si-quick/iter_000/train/member_1/model.pair_nequip.nequip.pt2"
    out = snakemake(
        "-n", "all", deployed, "--configfile", CONFIG, "--directory", str(tmp_path), cwd=REPO
    )
    text = out.stdout + out.stderr
    path = ("label", "train_member", "test_set", "deploy_member", "validate_final")
    loop = {r: job_field(text, r, "priority") for r in path}
    assert set(loop.values()) == {"10"}, loop
    assert int(job_field(text, "label_test_set", "priority") or 0) < 10


def test_at_the_cap_the_final_validation_does_not_wait_for_the_last_selection(tmp_path):
    # The last iteration the cap allows is the final one whatever its selection says, so its
    # committee is deployed and validated while that iteration explores (which then only tells
    # whether it converged). With a cap of 1 no selection stands between training and validation.
    config = yaml.safe_load((REPO / CONFIG).read_text())
    config["loop"]["max_iterations"] = 1
    capped = tmp_path / "capped.yaml"
    capped.write_text(yaml.safe_dump(config))
    target = "results/si-quick/final/validation.json"
    out = snakemake(
        "-n", target, "--configfile", str(capped), "--directory", str(tmp_path), cwd=REPO
    )
    planned = set(re.findall(r"^(?:rule|checkpoint) (\w+):", out.stdout + out.stderr, re.M))
    assert {"train_member", "deploy_member", "label_test_set", "validate_final"} <= planned
    assert "select" not in planned


@pytest.mark.parametrize("profile", ["local", "slurm"])
def test_profile_resources_reach_the_jobs_past_the_workflow_profile(profile, tmp_path):
    # profiles/default is applied after --profile; it must not erase the cluster profile's values.
    # The slurm profile by bare name, from the repository root, as the README says (setup makes
    # Snakemake find it); results go to a scratch folder.
    out = snakemake(
        "-n", "--profile", profile, "--configfile", CONFIG, "--directory", str(tmp_path), cwd=REPO
    )
    text = out.stdout + out.stderr
    assert f"Using profiles {profile} and workflow specific profile" in text
    label = job_resources(text, "label")
    if profile == "slurm":
        assert (label["tasks"], label["mpi"], label["slurm_partition"]) == ("8", "srun", "CHANGEME")
        train = job_resources(text, "train_member")
        assert (train["gpu"], train["slurm_partition"]) == ("1", "CHANGEME-gpu")
    else:
        assert (label["tasks"], label["mpi"], label["mem_mb"]) == ("1", "mpiexec", "4000")
        assert job_resources(text, "train_member")["gpu"] == "0"


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
    reference = "results/tiny/validation/dft_si.json"
    snakemake("--configfile", "tests/data/tiny.yaml", "-c2", target, reference, cwd=work)
    data = work / "results" / "tiny" / "iter_000" / "dataset"
    assert (data / "ase.db").is_file() and (data / "summary.json").is_file()
    again = snakemake("--configfile", "tests/data/tiny.yaml", "-c2", "-n", target, cwd=work)
    assert "Nothing to be done" in again.stdout + again.stderr
    # A DFT reference reads the protocol, the crystal and the property settings only: another
    # trust window must not re-run it (and with it every validation that reads it).
    config = yaml.safe_load((work / "tests/data/tiny.yaml").read_text())
    config["systems"]["si"]["trust"] = {"lo": 0.03, "hi": 0.5}
    retrusted = work / "retrusted.yaml"
    retrusted.write_text(yaml.safe_dump(config))
    plan = snakemake("--configfile", str(retrusted), "-n", reference, cwd=work)
    assert "Nothing to be done" in plan.stdout + plan.stderr, plan.stdout[-2000:]
