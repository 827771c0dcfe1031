"""Jobs killed mid-way (SIGKILL of the whole run), then a rerun: only the killed job runs again.

Each case starts from a copy of the finished tiny campaign (Snakemake's metadata included, so the
copy is up to date), forgets the outputs of one stage, runs that stage on one core and kills the
whole process group once one job of the stage has finished (for the minute-long compile: one
compiled before the run) and the next one is mid-way (a checkpoint written, LAMMPS dumping, the
compiler running). The rerun must run the killed job
alone and leave the finished job's files untouched. Labelling has its own kill test in
test_campaign.py (there the DFT store, not Snakemake, carries the finished frames).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import TINY_CAMPAIGN

pytestmark = [pytest.mark.slow, pytest.mark.faults]

JOB = re.compile(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", re.MULTILINE)
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)", re.MULTILINE)


@dataclass(frozen=True)
class Stage:
    """One stage's jobs in the tiny campaign: where each job writes and when it is mid-way."""

    rule: str
    job_dirs: tuple[str, ...]  # one folder per job, relative to results/tiny
    outputs: tuple[str, ...]  # each job's output files, relative to its folder
    forget: tuple[str, ...]  # what to delete so that the stage runs again (globs)
    midway: Callable[[Path], bool]  # the job writing into this folder is past its start
    finish_first: bool = True  # wait for one job of the stage to finish in the run being killed


def _has(*names: str) -> Callable[[Path], bool]:
    return lambda folder: any((folder / n).exists() for n in names)


STAGES = {
    "train": Stage(
        "train_member",
        ("iter_001/train/member_0", "iter_001/train/member_1"),
        ("best.ckpt", "metrics.json"),
        ("iter_001/train/member_*/best.ckpt", "iter_001/train/member_*/metrics.json"),
        _has("best.ckpt", "last.ckpt"),  # a checkpoint of the run being killed
    ),
    "deploy": Stage(
        "deploy_member",
        ("iter_001/train/member_0", "iter_001/train/member_1"),
        ("model.pair_nequip.nequip.pt2", "deploy.json"),
        ("iter_001/train/member_1/model.pair_nequip.*", "iter_001/train/member_1/deploy.json"),
        lambda folder: True,  # the compile takes a minute: started is mid-way
        finish_first=False,  # member 0 was compiled before: one compile less to wait for
    ),
    "explore": Stage(
        "explore",
        ("iter_000/explore/si/000-nvt-T600", "iter_000/explore/si/001-nvt-T1200"),
        ("trajectory.extxyz", "summary.json"),
        ("iter_000/explore/si/*",),
        _has("dump.lammpstrj", "log.lammps"),  # LAMMPS is running
    ),
}


def started_jobs(log: str, rule: str) -> dict[str, str]:
    """Job ids of `rule` that Snakemake started, with the first output of each."""
    jobs = {}
    for name, body in JOB.findall(log):
        fields = dict(line.strip().split(": ", 1) for line in body.splitlines() if ": " in line)
        if name == rule:
            jobs[fields["jobid"]] = fields["output"].split(",")[0].strip()
    return jobs


def finished_jobs(log: str, rule: str) -> set[str]:
    """Job ids of `rule` that Snakemake reported finished."""
    return {job for job, name in FINISHED.findall(log) if name == rule}


def targets(stage: Stage) -> list[str]:
    """The stage's output files, as Snakemake targets (nothing downstream of them runs)."""
    return [f"results/tiny/{folder}/{out}" for folder in stage.job_dirs for out in stage.outputs]


def copy_campaign(src: Path, dest: Path) -> Path:
    """Copy a finished campaign folder, Snakemake's records included, keeping modification times."""
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    return dest


def run_until_midway(work: Path, stage: Stage, log_path: Path, timeout_s: float = 600) -> str:
    """Run the stage on one core; SIGKILL all once a second job is mid-way; return its folder."""
    res = work / "results" / "tiny"
    cmd = ["snakemake", *targets(stage), *TINY_CAMPAIGN, "-c1"]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.time() + timeout_s
    try:
        while time.time() < deadline:
            assert proc.poll() is None, (
                "the run ended before it could be killed:\n" + log_path.read_text()[-3000:]
            )
            text = log_path.read_text()
            started, finished = started_jobs(text, stage.rule), finished_jobs(text, stage.rule)
            running = [job for job in started if job not in finished]
            if running and (finished or not stage.finish_first):
                folder = Path(started[running[0]]).parent
                if stage.midway(work / folder):
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return str(folder.relative_to(res.relative_to(work)))
            time.sleep(0.1)
        raise AssertionError(f"no {stage.rule} job was mid-way within {timeout_s} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_run_killed_mid_job_reruns_only_the_killed_job(name, tiny_campaign, tmp_path):
    stage = STAGES[name]
    work = copy_campaign(tiny_campaign, tmp_path / "campaign")
    res = work / "results" / "tiny"
    for pattern in stage.forget:
        for path in res.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    if stage.rule == "deploy_member":
        shutil.rmtree(res / "model_cache", ignore_errors=True)  # a cached compile is no job
    killed = run_until_midway(work, stage, tmp_path / "killed.log")
    (finished,) = [d for d in stage.job_dirs if d != killed]
    kept = {f: (res / finished / f).stat().st_mtime_ns for f in stage.outputs}

    subprocess.run(
        ["snakemake", "--unlock", *TINY_CAMPAIGN], cwd=work, check=True, capture_output=True
    )
    rerun = subprocess.run(
        ["snakemake", *targets(stage), *TINY_CAMPAIGN, "-c2"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, log[-4000:]
    again = [Path(out).parent for out in started_jobs(log, stage.rule).values()]
    assert [str(d.relative_to("results/tiny")) for d in again] == [killed], log[-4000:]
    assert {f: (res / finished / f).stat().st_mtime_ns for f in stage.outputs} == kept
    for folder in stage.job_dirs:
        for f in stage.outputs:
            assert (res / folder / f).stat().st_size > 0, f"{folder}/{f} missing after the rerun"
