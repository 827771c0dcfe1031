"""The SLURM profile against a real single-node SLURM: the tiny campaign through sbatch jobs.

One run of the tiny campaign with the README's literal ``snakemake --profile slurm`` (the profile
copied and edited as a user would: partition, no account, no GPU, sizes that fit this node; the
bare name found through a site config folder, as ``envs/setup.sh`` arranges for the venv).
While it runs, the first labelling job is cancelled with ``scancel`` once it has finished a frame;
the workflow must retry it and still finish with every frame exactly once. And the DFT reference
job is given too little time on its first attempt: SLURM ends it with TIMEOUT, and Snakemake must
resubmit it with more runtime.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from ase.db import connect

from conftest import TINY_CAMPAIGN, workflow_copy
from potforge.io import read_frames, read_json
from slurm_cluster import PARTITION, Cluster, install_slurm, start_cluster

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = install_slurm()
    if why:
        pytest.skip(why)
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        cluster.stop()


def edit_profile_for_this_cluster(work: Path) -> Path:
    """Fill the profile's EDIT and SIZE lines for a 2-core, GPU-less node, as a user would."""
    path = work / "profiles" / "slurm" / "config.yaml"
    profile = yaml.safe_load(path.read_text())
    profile["default-resources"]["slurm_partition"] = f"'{PARTITION}'"
    del profile["default-resources"]["slurm_account"]
    resources = profile["set-resources"]
    resources["label"]["tasks"] = 2  # both cores: GPAW runs as 2 MPI ranks started by srun
    for rule in ("train_member", "explore"):
        resources[rule].update(slurm_partition=f"'{PARTITION}'", gpu=0, cpus_per_task=1)
        resources[rule]["mem_mb"] = 4000
    resources["deploy_member"]["mem_mb"] = 4000
    # The DFT reference (made to take 2-3 minutes: `slurm_config`) gets 1 minute on its first
    # attempt: SLURM ends it with TIMEOUT and the retry (profiles/default: retries 1) must ask for
    # more and complete.
    resources["dft_reference"] = {"runtime": "1 if attempt == 1 else 30"}
    profile["set-threads"] = {"train_member": 1, "explore": 1}
    # This test cluster has no accounting database: job states come from squeue.
    profile.update({"slurm-status-command": "squeue", "latency-wait": 5})
    profile["slurm-init-seconds-before-status-checks"] = 2
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path


def slurm_config(work: Path) -> list[str]:
    """The tiny campaign with a DFT reference that outlasts a 1-minute limit on any machine.

    The tiny reference alone takes about 46 s here (the 7-atom vacancy cell), under the limit
    plus SLURM's 30 s check period; the 23-atom vacancy cell makes it about 4 minutes. Only the
    property settings change: the campaign's files are the same as a local tiny run's.
    """
    config = yaml.safe_load((work / TINY_CAMPAIGN[1]).read_text())
    config["validate"]["properties"]["vacancy"]["supercell"] = [3, 1, 1]
    path = work / "tests" / "data" / "tiny_slurm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return ["--configfile", str(path.relative_to(work))]


def profile_env(cluster: Cluster, work: Path) -> dict[str, str]:
    """The cluster's client environment, with the copy's profiles found by bare name."""
    site = work / ".xdg"
    (site / "snakemake").mkdir(parents=True)
    for profile in (work / "profiles").iterdir():
        (site / "snakemake" / profile.name).symlink_to(profile)
    env = cluster.env
    env["XDG_CONFIG_DIRS"] = f"{site}:{env.get('XDG_CONFIG_DIRS', '/etc/xdg')}"
    return env


class LabelJobCanceller(threading.Thread):
    """Cancel the first running labelling job once the DFT store has gained a frame under it."""

    def __init__(self, cluster: Cluster, store: Path, deadline_s: float = 900.0):
        super().__init__(daemon=True)
        self.cluster, self.store, self.deadline = cluster, store, time.time() + deadline_s
        self.cancelled: str | None = None
        self.frames_before_cancel = 0
        self.stop_event = threading.Event()

    def running_label_job(self) -> str | None:
        out = self.cluster.command("squeue", "-h", "-t", "RUNNING", "-o", "%i|%k")
        for line in out.splitlines():
            job_id, comment = line.split("|", 1)
            if "rule_label" in comment:
                return job_id
        return None

    def stored(self) -> set[str]:
        return {p.name for p in self.store.glob("*.extxyz")} if self.store.is_dir() else set()

    def run(self) -> None:
        while not self.stop_event.is_set() and time.time() < self.deadline:
            job_id = self.running_label_job()
            if job_id is None:
                time.sleep(0.2)
                continue
            before = self.stored()
            while self.cluster.job_state(job_id) == "RUNNING":
                if self.stored() - before:
                    self.cluster.command("scancel", job_id)
                    self.cancelled = job_id
                    self.frames_before_cancel = len(self.stored() - before)
                    return
                time.sleep(0.1)


@pytest.fixture(scope="module")
def slurm_campaign(cluster, tmp_path_factory):
    """The tiny campaign run through SLURM, with one labelling job cancelled on the way."""
    work = workflow_copy(tmp_path_factory.mktemp("slurm_campaign"))
    edit_profile_for_this_cluster(work)
    canceller = LabelJobCanceller(cluster, work / "results" / "tiny" / "dft_store")
    canceller.start()
    try:
        proc = subprocess.run(
            ["snakemake", "--profile", "slurm", *slurm_config(work)],
            cwd=work,
            env=profile_env(cluster, work),
            capture_output=True,
            text=True,
            timeout=2400,
        )
    finally:
        canceller.stop_event.set()
        canceller.join()
    output = proc.stdout + proc.stderr
    (work / "snakemake.log").write_text(output)
    assert proc.returncode == 0, output[-6000:]
    return work, output, canceller


def relative_files(root: Path) -> set[str]:
    """Result files that any run of the campaign has, whatever its models (no hashed names)."""
    skip = ("dft_store/", "model_cache/", "lammps/")
    names = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    return {n for n in names if not n.startswith(skip) and "torchinductor" not in n}


def test_jobs_went_through_slurm(cluster, slurm_campaign):
    work, output, canceller = slurm_campaign
    job_ids = re.findall(r"SLURM jobid (\d+)", output)
    assert len(job_ids) >= 15, "every rule but `all` runs as a SLURM job"
    states = [cluster.job_state(job_id) for job_id in job_ids if job_id != canceller.cancelled]
    # one TIMEOUT: the DFT reference's first attempt, given 1 minute on purpose (see below)
    assert states.count("TIMEOUT") == 1 and set(states) == {"COMPLETED", "TIMEOUT"}, states
    # GPAW ran as 2 MPI ranks through srun inside the labelling jobs.
    db = connect(work / "results" / "tiny" / "iter_001" / "dataset" / "ase.db")
    assert {row.get("dft_ranks") for row in db.select(quarantined=False)} == {2}


def test_outputs_equal_a_local_run_in_structure(slurm_campaign, tiny_campaign):
    work, _, _ = slurm_campaign
    slurm_res, local_res = work / "results" / "tiny", tiny_campaign / "results" / "tiny"
    assert relative_files(slurm_res) == relative_files(local_res)
    for res in (slurm_res, local_res):
        card = read_json(res / "final" / "model_card.json")
        assert card["iterations"] == 2
    # Iteration 0 is fixed by the sampling plan; later iterations depend on the trained models.
    for name in ("sample/si.extxyz", "dataset/train.extxyz", "dataset/test.extxyz"):
        counts = [len(read_frames(res / "iter_000" / name)) for res in (slurm_res, local_res)]
        assert counts[0] == counts[1], name


@pytest.mark.faults
def test_cancelled_labelling_job_is_retried_without_duplicate_frames(cluster, slurm_campaign):
    work, output, canceller = slurm_campaign
    assert canceller.cancelled, "no labelling job was running long enough to be cancelled"
    assert cluster.job_state(canceller.cancelled) == "CANCELLED"
    assert re.search(rf"SLURM-job '{canceller.cancelled}' failed", output)
    res = work / "results" / "tiny"
    db = connect(res / "iter_001" / "dataset" / "ase.db")
    keys = [row.structure_hash for row in db.select()]
    assert len(keys) == len(set(keys)), "a frame is in the dataset twice"
    sampled = sum(len(read_frames(p)) for p in (res / "iter_000" / "sample").glob("si.extxyz"))
    labelled_0 = read_json(res / "iter_000" / "dataset" / "summary.json")["frames"]
    assert labelled_0 == sampled, "a frame was lost"
    reports = [read_json(p) for p in (res / "iter_000" / "labels").glob("chunk_*.json")]
    assert sum(r["reused"] for r in reports) >= canceller.frames_before_cancel


@pytest.mark.faults
def test_a_job_past_its_time_limit_is_resubmitted_with_more_time_and_completes(
    cluster, slurm_campaign
):
    work, output, _ = slurm_campaign
    attempts = []
    for job_id in re.findall(r"SLURM jobid (\d+)", output):
        info = cluster.command("scontrol", "show", "job", job_id)
        if "rule_dft_reference" in info:
            fields = dict(item.split("=", 1) for item in info.split() if "=" in item)
            attempts.append((fields["JobState"], fields["TimeLimit"]))
    assert attempts == [("TIMEOUT", "00:01:00"), ("COMPLETED", "00:30:00")], attempts
    reference = read_json(work / "results" / "tiny" / "validation" / "dft_si.json")
    assert reference["properties"], "the resubmitted DFT reference wrote no properties"
