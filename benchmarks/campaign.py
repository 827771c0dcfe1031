"""The default campaign end to end: wall time, DFT spent, final accuracy, Snakemake's own share.

Runs the README's run command (`make run`: setup, then the default silicon campaign of
config/config.yaml on this machine), then reads Snakemake's log of that run:

- wall_s: the whole `make run` (setup included; about a second when already set up),
- job_seconds_sum: the sum of every job's run time (jobs run side by side, so it can exceed wall),
- busy_s: time during which at least one job was running,
- snakemake_overhead_fraction: (wall - busy) / wall, the time nothing ran (DAG building,
  checkpoint re-evaluation, scheduling, setup); the literal (wall - sum of jobs) / wall is
  also written, as `wall_minus_job_sum_fraction` (negative when jobs overlap).

The final model card is copied to benchmarks/results/default_campaign/.

    python benchmarks/campaign.py              # needs no results/<campaign>/ yet: a fresh run
    python benchmarks/campaign.py --log .snakemake/log/<run>.snakemake.log --wall 1850
                                               # analyse a run made by hand with `make run`
    python benchmarks/campaign.py --config config/hfo2-quick.yaml --name hfo2_campaign
                                               # another campaign: hfo2_campaign.json (with the
                                               # polymorph figures) and hfo2_campaign/

The speed comparison against the main the speed work started from is benchmarks/speed.py.

CPU utilisation per stage comes from the jobs' Snakemake benchmark files (cpu_time / s).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def job_intervals(log_text: str) -> list[tuple[str, float, float]]:
    """(rule, start, end) in seconds since the epoch for every finished job of a Snakemake log."""
    stamp, pending_rule, started, intervals = None, None, {}, []
    for line in log_text.splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").timestamp()
        elif m := START.match(line):
            pending_rule = (m.group(1), stamp)
        elif (m := JOBID.match(line)) and pending_rule is not None:
            started[m.group(1)] = pending_rule
            pending_rule = None
        elif m := FINISHED.match(line):
            rule, begin = started.pop(m.group(1), (m.group(2), stamp))
            intervals.append((rule, begin, stamp))
    return intervals


ITER = re.compile(r"^\s+wildcards: .*\biter=(\d+)")


def iteration_spans(log_text: str, rule: str) -> dict[str, float]:
    """Per iteration: seconds from the first start to the last end of `rule`'s jobs.

    The wall a stage takes: a committee trained in one wave spans about one member's time, in
    two waves about two.
    """
    stamp, pending, jobid, started = None, None, None, {}
    spans: dict[str, list[float]] = {}
    for line in log_text.splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").timestamp()
        elif m := START.match(line):
            pending = m.group(1)
        elif (m := JOBID.match(line)) and pending is not None:
            jobid = m.group(1)
        elif (m := ITER.match(line)) and pending == rule and jobid is not None:
            started[jobid] = (m.group(1), stamp)
            pending = jobid = None
        elif (m := FINISHED.match(line)) and m.group(1) in started and m.group(2) == rule:
            it, begin = started.pop(m.group(1))
            first, last = spans.get(it, [begin, stamp])
            spans[it] = [min(first, begin), max(last, stamp)]
    return {it: round(b - a, 1) for it, (a, b) in sorted(spans.items())}


def busy_seconds(intervals: list[tuple[str, float, float]]) -> float:
    """Length of the union of the job intervals: time during which at least one job ran."""
    total, end = 0.0, float("-inf")
    for _, a, b in sorted(intervals, key=lambda x: x[1]):
        if a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


DEFAULT_CONFIG = "config/config.yaml"
COMPILE_RULES = ("deploy_member",)


def cpu_utilisation(results: Path) -> dict[str, dict[str, float]]:
    """Per stage: job seconds, CPU seconds and their ratio, from the jobs' benchmark files."""
    import csv

    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for path in (results / "logs").rglob("*.benchmark.tsv"):
        name = path.name.removesuffix(".benchmark.tsv")
        parent = path.parent.name
        stage = (
            "label"
            if parent == "labels"
            else "train"
            if name.startswith("member_")
            else "deploy"
            if name.startswith(("deploy_", "package_"))
            else "validate"
        )
        with open(path) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        totals[stage][0] += float(row["s"])
        totals[stage][1] += float(row.get("cpu_time") or 0.0)
    return {
        stage: {
            "job_s": round(s, 1),
            "cpu_s": round(cpu, 1),
            "cpu_per_job_s": round(cpu / s, 3) if s else None,
        }
        for stage, (s, cpu) in sorted(totals.items())
    }


def polymorph_summary(validation: dict) -> dict:
    """Polymorph figures of a validation: energy order, dE per formula unit, volume errors.

    Empty when the validation compares no polymorphs (one crystal per formula).
    """
    rows = [r for r in validation.get("properties", []) if "error_kind" in r]
    energy = {r["name"][3:-1]: r for r in rows if r["name"].startswith("dE(")}
    if not energy:
        return {}
    volumes = {r["system"]: r for r in rows if r["name"] == "V0_per_fu"}
    order = {side: sorted(energy, key=lambda pair: energy[pair][side]) for side in ("model", "dft")}
    return {
        "polymorph_order_model": [pair.split("-")[0] for pair in order["model"]],
        "polymorph_order_dft": [pair.split("-")[0] for pair in order["dft"]],
        "delta_e_mev_per_fu": {
            pair: {
                "model": round(r["model"], 1),
                "dft": round(r["dft"], 1),
                "pass": r["pass"],
                "dft_scatter": None if r.get("dft_scatter") is None else round(r["dft_scatter"], 1),
            }
            for pair, r in sorted(energy.items())
            if r["dft"] != 0.0 or r["model"] != 0.0
        },
        "volume_error_percent": {s: round(r["error"], 3) for s, r in sorted(volumes.items())},
        "volume_pass": {s: r["pass"] for s, r in sorted(volumes.items())},
    }


def campaign_record(log: Path, wall_s: float, results: Path, config: str) -> dict:
    """The campaign.json record of one finished run."""
    log_text = log.read_text()
    intervals = job_intervals(log_text)
    per_rule: dict[str, float] = defaultdict(float)
    for rule, a, b in intervals:
        per_rule[rule] += b - a
    job_sum = sum(per_rule.values())
    busy = busy_seconds(intervals)
    card = json.loads((results / "final" / "model_card.json").read_text())
    validation_path = results / "final" / "validation.json"
    validation = json.loads(validation_path.read_text()) if validation_path.is_file() else {}
    test_set = validation.get("test_set") or {}
    summary = validation.get("property_summary") or {}
    reports = sorted(results.glob("iter_*/select/report.json"))
    last = json.loads(reports[card["final_iteration"]].read_text()) if reports else {}
    compile_s = sum(v for k, v in per_rule.items() if k in COMPILE_RULES)
    command = "make run" if config == DEFAULT_CONFIG else f"make run CONFIG={config}"
    return {
        "command": command,
        "config": config,
        "wall_s": round(wall_s, 1),
        "iterations": card["iterations"],
        "dft_frames": card["dft_frames"],
        "dft_core_seconds": card["dft_core_seconds"],
        "test_force_rmse": card["test_force_rmse"],
        "test_frames": card["dataset"]["per_split"].get("test", 0),
        "stop_reason": card["stop_reason"],
        "converged": bool(last.get("converged")),
        "independent_test_frames": test_set.get("frames"),
        "independent_force_rmse": test_set.get("force_rmse_ev_per_a"),
        "independent_energy_rmse_mev": test_set.get("energy_rmse_mev_per_atom"),
        "properties_passed": summary.get("passed"),
        "properties_total": summary.get("total"),
        "independent_force_rmse_per_species": test_set.get("per_species_force_rmse_ev_per_a"),
        **polymorph_summary(validation),
        "compile_share_of_job_seconds": round(compile_s / job_sum, 4) if job_sum else None,
        "cpu_utilisation_per_stage": cpu_utilisation(results),
        "jobs": len(intervals),
        "job_seconds_sum": round(job_sum, 1),
        "busy_s": round(busy, 1),
        "snakemake_overhead_fraction": round((wall_s - busy) / wall_s, 4),
        "wall_minus_job_sum_fraction": round((wall_s - job_sum) / wall_s, 4),
        "job_seconds_per_rule": {k: round(v, 1) for k, v in sorted(per_rule.items())},
        "train_wall_per_iteration_s": iteration_spans(log_text, "train_member"),
        "machine": "2 cores, no GPU",
        "log": str(log.relative_to(ROOT)) if log.is_relative_to(ROOT) else str(log),
    }


def run_campaign(config: str) -> tuple[Path, float]:
    """Run `make run` from the repository root; return Snakemake's log of it and the wall time."""
    logs = ROOT / ".snakemake" / "log"
    before = set(logs.glob("*.snakemake.log")) if logs.is_dir() else set()
    start = time.perf_counter()
    subprocess.run(["make", "run", f"CONFIG={config}"], cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    (log,) = set(logs.glob("*.snakemake.log")) - before
    return log, wall


def main() -> None:
    """Run (or analyse) the default campaign, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="the campaign's config file")
    parser.add_argument(
        "--name",
        default="campaign",
        help="NAME.json and NAME/ (default: campaign.json and "
        "default_campaign/) in benchmarks/results",
    )
    parser.add_argument("--log", type=Path, help="analyse this Snakemake log instead of running")
    parser.add_argument("--wall", type=float, help="wall time of that run, in seconds")
    args = parser.parse_args()
    campaign = yaml.safe_load((ROOT / args.config).read_text())["campaign"]
    results = ROOT / "results" / campaign
    if args.log:
        if args.wall is None:
            parser.error("--log needs --wall (the run's wall time in seconds)")
        log, wall = args.log.resolve(), args.wall
    else:
        if results.exists():
            raise SystemExit(f"{results} exists: move it away for a from-scratch measurement")
        log, wall = run_campaign(args.config)
    record = campaign_record(log, wall, results, args.config)
    card_dir = RESULTS / ("default_campaign" if args.name == "campaign" else args.name)
    card_dir.mkdir(parents=True, exist_ok=True)
    for name in (
        "final/model_card.json",
        "final/model_card.md",
        "final/validation.json",
        "report.html",
    ):
        if (results / name).is_file():
            shutil.copy(results / name, card_dir / Path(name).name)
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    width = max(len(k) for k in record)
    for key, value in record.items():
        if key != "job_seconds_per_rule":
            print(f"{key:<{width}}  {value}")
    for rule, seconds in record["job_seconds_per_rule"].items():
        print(f"{'  ' + rule:<{width}}  {seconds} s")
    print(f"written: {out} and {card_dir}/")


if __name__ == "__main__":
    main()
