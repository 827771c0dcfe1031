"""Campaign speed: the same loop at a baseline commit and in this tree, one after the other.

Both runs build the speed campaign (benchmarks/speed_config.yaml: the default campaign of the
baseline commit with a trust window and MD plan that make both codes do the same work; the
file says why) on this machine, from nothing:

- baseline: a clone of this repository at --baseline-commit (default 97c7102, the main the
  speed issue started from) runs its own `snakemake --profile profiles/local --configfile
  benchmarks/speed_config.yaml` with its own package (PYTHONPATH) in the current .venv;
- new: this tree runs `snakemake --profile profiles/local loop` on the same file plus
  `train.keep_epoch: last` (NEW_RUN_TRAIN says why): the same loop (sample, label, train,
  explore, select up to the iteration cap, the final committee compiled for LAMMPS) without
  stage 7 (the independent test set, DFT references, property and MD checks), which the
  baseline did not have.

Each run gets a fresh inductor cache. Writes benchmarks/results/speed.json: both walls and their
ratio, job seconds per rule, the compile share of job seconds (and the deploy share: packages
too), CPU utilisation per stage (from the jobs' benchmark files) and the frames picked per
iteration of both.

    python benchmarks/speed.py --scratch /tmp/speed  # both runs: about 70 min on 2 cores
    python benchmarks/speed.py --log NEW.log --wall 1400 \\
        --baseline-log OLD.log --baseline-wall 2500 --baseline-results OLD/results/si-speed
                                                     # analyse two runs made by hand
    python benchmarks/speed.py --units base=OLD.log:OLD/results/si-quick \\
        --units new=NEW.log:results/si-speed    # cost per unit of work (frames, MD steps,
                                                # members) of runs that did not do the same work
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml
from ase.io import read

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign import busy_seconds, cpu_utilisation, job_intervals  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SPEED_CONFIG = "benchmarks/speed_config.yaml"
BASELINE_COMMIT = "97c7102"
COMPILE_RULES = ("deploy_member",)
# Everything that turns a checkpoint into a deployable file: at the baseline one rule
# (deploy_member: nequip-package and nequip-compile); in this tree the training job packages its
# member in-process (metrics.json: package_s, counted here as deploy) and deploy_member compiles
# the final committee (package_member: the rule that packaged in between).
DEPLOY_RULES = ("deploy_member", "package_member")
# This tree's run only: every epoch runs and the last is kept. The baseline (which has no such
# key) keeps the epoch with the lowest loss on a one-frame validation split, with early stopping
# after 40 epochs without a better one; here that picked epochs 2, 11 and 2 of the iteration-0
# members (the baseline's: 20, 11, 17), whose committee halted every trajectory at 1.5 eV/A
# within 20-460 steps and left nothing to pick. Running all 150 epochs costs this tree more
# training than the baseline's early-stopped members, never less.
NEW_RUN_TRAIN = {"keep_epoch": "last"}


def rule_seconds(log: Path) -> tuple[list[tuple[str, float, float]], dict[str, list[float]]]:
    """The job intervals of a Snakemake log, and each rule's job durations."""
    intervals = job_intervals(log.read_text())
    per_rule: dict[str, list[float]] = defaultdict(list)
    for rule, a, b in intervals:
        per_rule[rule].append(b - a)
    return intervals, per_rule


def labelled_frames(results: Path) -> int:
    """DFT frames labelled so far (quarantined and half-written chunks left out)."""
    return sum(
        len(read(path, ":"))
        for path in results.glob("iter_*/labels/chunk_*.extxyz")
        if not path.name.endswith(".failed.extxyz") and path.stat().st_size
    )


def run_record(log: Path, wall_s: float, results: Path) -> dict:
    """Wall, job seconds per rule, compile share, CPU use and picks of one finished loop."""
    intervals, durations = rule_seconds(log)
    per_rule = {rule: sum(v) for rule, v in durations.items()}
    job_sum = sum(per_rule.values())
    reports = [json.loads(p.read_text()) for p in sorted(results.glob("iter_*/select/report.json"))]
    compile_s = sum(v for k, v in per_rule.items() if k in COMPILE_RULES)
    in_training = sum(
        json.loads(p.read_text()).get("package_s", 0.0)
        for p in results.glob("iter_*/train/member_*/metrics.json")
    )
    deploy_s = sum(v for k, v in per_rule.items() if k in DEPLOY_RULES) + in_training
    frames = labelled_frames(results)
    return {
        "wall_s": round(wall_s, 1),
        "iterations": len(reports),
        "picked_per_iteration": [len(r.get("picked", [])) for r in reports],
        "dft_frames": frames,
        "label_seconds_per_frame": round(per_rule.get("label", 0.0) / frames, 1)
        if frames
        else None,
        "job_seconds_sum": round(job_sum, 1),
        "busy_s": round(busy_seconds(intervals), 1),
        "compile_share_of_job_seconds": round(compile_s / job_sum, 4) if job_sum else None,
        "deploy_share_of_job_seconds": round(deploy_s / job_sum, 4) if job_sum else None,
        "package_seconds_in_training_jobs": round(in_training, 1),
        "job_seconds_per_rule": {k: round(v, 1) for k, v in sorted(per_rule.items())},
        "cpu_utilisation_per_stage": cpu_utilisation(results),
    }


def unit_costs(log: Path, results: Path) -> dict:
    """Cost per unit of work of one loop, finished or partial.

    Job seconds per DFT frame, per MD step, per packaged or compiled member, per trained
    member; and the picks so far.
    """
    _, per_rule = rule_seconds(log)
    frames = labelled_frames(results)
    steps, md_wall, tasks = 0, 0.0, 0
    for path in results.glob("iter_*/explore/*/*/summary.json"):
        summary = json.loads(path.read_text())
        steps, md_wall, tasks = (
            steps + summary["steps_done"],
            md_wall + summary["wall_time_s"],
            tasks + 1,
        )

    def per(rule: str, count: float) -> float | None:
        return round(sum(per_rule[rule]) / count, 1) if per_rule[rule] and count else None

    reports = sorted(results.glob("iter_*/select/report.json"))
    return {
        "dft_frames": frames,
        "label_job_s_per_frame": per("label", frames),
        "md_tasks": tasks,
        "md_steps": steps,
        "md_ms_per_step": round(1e3 * md_wall / steps, 2) if steps else None,
        "explore_job_s_per_task": per("explore", len(per_rule["explore"])),
        "compile_job_s_per_member": per("deploy_member", len(per_rule["deploy_member"])),
        "package_job_s_per_member": per("package_member", len(per_rule["package_member"])),
        "train_job_s_per_member": per("train_member", len(per_rule["train_member"])),
        "picked_per_iteration": [len(json.loads(r.read_text())["picked"]) for r in reports],
        "job_seconds_per_rule": {k: round(sum(v), 1) for k, v in sorted(per_rule.items())},
    }


def timed_snakemake(cwd: Path, args: list[str], env: dict[str, str]) -> tuple[Path, float]:
    """Run snakemake in `cwd`; return the Snakemake log it wrote and the wall time."""
    logs = cwd / ".snakemake" / "log"
    before = set(logs.glob("*.snakemake.log")) if logs.is_dir() else set()
    start = time.perf_counter()
    subprocess.run(
        ["snakemake", "--profile", "profiles/local", *args], cwd=cwd, env=env, check=True
    )
    wall = time.perf_counter() - start
    (log,) = set(logs.glob("*.snakemake.log")) - before
    return log, wall


def run_both(commit: str, scratch: Path) -> tuple[tuple[Path, float, Path], tuple[Path, float]]:
    """The baseline run in a clone at `commit`, then the new run here."""
    campaign = yaml.safe_load((ROOT / SPEED_CONFIG).read_text())["campaign"]
    if (ROOT / "results" / campaign).exists():
        raise SystemExit(f"results/{campaign} exists: move it away for a from-scratch run")
    clone = scratch / "baseline"
    if clone.exists():
        raise SystemExit(f"{clone} exists (an earlier baseline): move it away or pick --scratch")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True)
    # The same file for both; the baseline's own schema check rejects any key it does not know.
    (clone / SPEED_CONFIG).write_text((ROOT / SPEED_CONFIG).read_text())
    env = dict(os.environ, PYTHONPATH=str(clone / "workflow"))
    env["TORCHINDUCTOR_CACHE_DIR"] = str(scratch / "inductor-baseline")
    print(f"[speed] baseline {commit} in {clone}", flush=True)
    base_log, base_wall = timed_snakemake(clone, ["--configfile", SPEED_CONFIG], env)
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(scratch / "inductor-new"))
    env.pop("PYTHONPATH", None)
    config = yaml.safe_load((ROOT / SPEED_CONFIG).read_text())
    config["train"].update(NEW_RUN_TRAIN)
    new_config = scratch / "speed_config_new.yaml"
    new_config.write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"[speed] new: snakemake loop ({new_config}: train {NEW_RUN_TRAIN})", flush=True)
    log, wall = timed_snakemake(ROOT, ["loop", "--configfile", str(new_config)], env)
    return (base_log, base_wall, clone / "results" / campaign), (log, wall)


def main() -> None:
    """Run (or analyse) the two loops, print the table and write speed.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT)
    parser.add_argument("--log", type=Path, help="Snakemake log of a new run made by hand")
    parser.add_argument("--wall", type=float, help="its wall time (s)")
    parser.add_argument("--baseline-log", type=Path, help="Snakemake log of the baseline run")
    parser.add_argument("--baseline-wall", type=float, help="its wall time (s)")
    parser.add_argument("--baseline-results", type=Path, help="results/<campaign> of the baseline")
    parser.add_argument(
        "--scratch", type=Path, help="keep the baseline clone and caches here (default: a temp dir)"
    )
    parser.add_argument("--note", help="a note kept in speed.json (conditions of the runs)")
    parser.add_argument(
        "--units",
        action="append",
        default=[],
        metavar="NAME=LOG:RESULTS",
        help="cost per unit of work of runs (repeatable; finished or not): speed_units.json",
    )
    args = parser.parse_args()
    if args.units:
        units = {}
        for spec in args.units:
            name, _, paths = spec.partition("=")
            log, _, results = paths.partition(":")
            units[name] = unit_costs(Path(log), Path(results))
        if args.note:
            units["note"] = args.note
        (RESULTS / "speed_units.json").write_text(json.dumps(units, indent=2) + "\n")
        keys = [k for k in next(iter(units.values())) if k != "job_seconds_per_rule"]
        print(f"{'':<28}" + "".join(f"{n:>16}" for n in units if n != "note"))
        for key in keys:
            row = [str(u[key]) for n, u in units.items() if n != "note"]
            print(f"{key:<28}" + "".join(f"{v:>16}" for v in row))
        print(f"written: {RESULTS / 'speed_units.json'}")
        return
    campaign = yaml.safe_load((ROOT / SPEED_CONFIG).read_text())["campaign"]
    if args.log:
        if None in (args.wall, args.baseline_log, args.baseline_wall, args.baseline_results):
            parser.error("--log needs --wall, --baseline-log, --baseline-wall, --baseline-results")
        baseline = run_record(args.baseline_log, args.baseline_wall, args.baseline_results)
        log, wall = args.log, args.wall
    else:
        with tempfile.TemporaryDirectory(prefix="potforge-speed-") as tmp:
            scratch = args.scratch or Path(tmp)
            scratch.mkdir(parents=True, exist_ok=True)
            (base_log, base_wall, base_results), (log, wall) = run_both(
                args.baseline_commit, scratch
            )
            print(f"[speed] baseline: {base_log} {base_wall:.0f} s; new: {log} {wall:.0f} s")
            baseline = run_record(base_log, base_wall, base_results)
    record = run_record(log, wall, ROOT / "results" / campaign)
    speed = {
        "baseline_commit": args.baseline_commit,
        "config": SPEED_CONFIG,
        "command": f"snakemake --profile profiles/local loop --configfile {SPEED_CONFIG}"
        f" plus train {NEW_RUN_TRAIN}",
        "baseline_command": f"snakemake --profile profiles/local --configfile {SPEED_CONFIG}",
        "wall_s": record["wall_s"],
        "baseline_wall_s": baseline["wall_s"],
        "wall_ratio": round(record["wall_s"] / baseline["wall_s"], 3),
        "job_seconds_ratio": round(record["job_seconds_sum"] / baseline["job_seconds_sum"], 3),
        "compile_share_of_job_seconds": record["compile_share_of_job_seconds"],
        "baseline_compile_share_of_job_seconds": baseline["compile_share_of_job_seconds"],
        "deploy_share_of_job_seconds": record["deploy_share_of_job_seconds"],
        "baseline_deploy_share_of_job_seconds": baseline["deploy_share_of_job_seconds"],
        "new": record,
        "baseline": baseline,
        "machine": "2 cores, no GPU",
    }
    if args.note:
        speed["note"] = args.note
    (RESULTS / "speed.json").write_text(json.dumps(speed, indent=2) + "\n")
    rules = sorted(set(record["job_seconds_per_rule"]) | set(baseline["job_seconds_per_rule"]))
    print(f"{'':<26}{'baseline':>12}{'new':>12}")
    for key in (
        "wall_s",
        "job_seconds_sum",
        "iterations",
        "dft_frames",
        "label_seconds_per_frame",
        "compile_share_of_job_seconds",
        "deploy_share_of_job_seconds",
    ):
        print(f"{key:<26}{baseline[key]!s:>12}{record[key]!s:>12}")
    print(
        f"{'picked per iteration':<26}{baseline['picked_per_iteration']!s:>12}"
        f"{record['picked_per_iteration']!s:>12}"
    )
    for rule in rules:
        b = baseline["job_seconds_per_rule"].get(rule, 0.0)
        n = record["job_seconds_per_rule"].get(rule, 0.0)
        print(f"{'  ' + rule:<26}{b:>12}{n:>12}")
    print(f"wall ratio {speed['wall_ratio']}  job-seconds ratio {speed['job_seconds_ratio']}")
    print(f"written: {RESULTS / 'speed.json'}")


if __name__ == "__main__":
    main()
