"""Active learning against random sampling at equal DFT cost (issue 16).

Two arms of one campaign that differ only in `select.strategy`: `uncertainty` (committee
deviation, the default) and `random` (the same number of frames per iteration, drawn uniformly
from every explored frame). The random arm is derived from the active arm's iteration 0 (a copy
of its folder up to iteration 0's exploration: the same labels, first committee and
independent test set), then run for as many iterations with `--rerun-triggers mtime`, so the
arms part exactly where their strategies do. Every iteration's committee of both arms is then
measured on the shared independent test set (`potforge compare`). Writes
benchmarks/results/al_efficiency.json and benchmarks/results/al_efficiency.png.

    python benchmarks/al_efficiency.py --active results/si-quick   # reuse a finished make run
    python benchmarks/al_efficiency.py                             # run the active arm first

With `--seeds`, each seed is a separate pair of arms (campaign `al-<strategy>-s<seed>`).
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "workflow"))


def arm_config(base: dict, strategy: str, seed: int, campaign: str) -> dict:
    """The campaign as one arm: its strategy, seed and name."""
    config = copy.deepcopy(base)
    config["campaign"] = campaign
    config["seed"] = seed
    config.setdefault("select", {})["strategy"] = strategy
    return config


def snakemake(config: dict, out_dir: Path, targets: list[str], flags: list[str]) -> float:
    """Run Snakemake on one arm's config with the local profile; return its wall time."""
    path = out_dir / f"{config['campaign']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    start = time.monotonic()
    cmd = ["snakemake", *targets, "--profile", "profiles/local", "--configfile", str(path)]
    cmd += flags
    print(f"[al] {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(
            f"{config['campaign']} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return time.monotonic() - start


def mean_curve(curves: list[list[dict]]) -> list[dict]:
    """Average arms of several seeds iteration by iteration (over the iterations all have)."""
    n = min(len(c) for c in curves)
    keys = ("dft_frames", "dft_core_seconds", "force_rmse_ev_per_a", "energy_rmse_mev_per_atom")
    return [
        {"iteration": k, **{key: sum(c[k][key] for c in curves) / len(curves) for key in keys}}
        for k in range(n)
    ]


def without_halted_tails(frames: list, active: Path, trust_hi: float) -> list:
    """Drop test frames from the tail of a halted iteration-0 run (the test-set draw rule)."""
    from potforge.io import read_frames
    from potforge.validate.testset import trusted_end

    last_step: dict[str, int] = {}
    kept = []
    for atoms in frames:
        task = atoms.info.get("task")
        if atoms.info.get("source") == "explore" and task:
            if task not in last_step:
                path = active / "iter_000" / "explore" / task / "trajectory.extxyz"
                run = read_frames(path)
                end = trusted_end(run, trust_hi)
                last_step[task] = int(run[end - 1].info["step"]) if end else -1
            if int(atoms.info["step"]) > last_step[task]:
                continue
        kept.append(atoms)
    return kept


def main() -> None:
    """Run (or reuse) the active arm, derive and run the random arm, compare, write results."""
    from potforge.compare import (
        arm_curve,
        derive_arm,
        efficiency,
        learning_curve_png,
        shared_test_set,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--active", help="a finished uncertainty campaign of --config to reuse")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the config's seed")
    parser.add_argument("--iterations", type=int, help="compare only the first N iterations")
    args = parser.parse_args()
    base = yaml.safe_load((ROOT / args.config).read_text())
    configs = RESULTS / "al_efficiency_configs"
    configs.mkdir(parents=True, exist_ok=True)
    walls: dict[str, float] = {}
    pairs: list[tuple[Path, Path]] = []
    for seed in args.seeds or [int(base["seed"])]:
        if args.active:
            active = (ROOT / args.active).resolve()
        else:
            config = arm_config(base, "uncertainty", seed, f"al-uncertainty-s{seed}")
            walls[config["campaign"]] = round(snakemake(config, configs, [], []), 1)
            active = ROOT / "results" / config["campaign"]
        iterations = len(list(active.glob("iter_[0-9][0-9][0-9]/train/committee.json")))
        iterations = min(iterations, args.iterations or iterations)
        name = f"{active.name}-random"
        config = arm_config(base, "random", seed, name)
        random_dir = ROOT / "results" / name
        derive_arm(active, random_dir)
        print(f"[al] {random_dir}: iteration 0 of {active}, {iterations} iterations", flush=True)
        last = f"results/{name}/iter_{iterations - 1:03d}/train/committee.json"
        packages = [  # what the comparison loads
            f"results/{name}/iter_{iterations - 1:03d}/train/member_{k}/model.nequip.zip"
            for k in range(int(config["train"]["committee"]))
        ]
        flags = ["--rerun-triggers", "mtime"]
        walls[name] = round(snakemake(config, configs, [last, *packages], flags), 1)
        pairs.append((active, random_dir))
    frames = shared_test_set([d for pair in pairs for d in pair])
    drawn = len(frames)
    trust_hi = next(iter(base["systems"].values()))["trust"]["hi"]
    frames = without_halted_tails(frames, pairs[0][0], trust_hi)
    curves = {"uncertainty": [], "random": []}
    for active, random_dir in pairs:
        n = args.iterations
        curves["uncertainty"].append(arm_curve(active, frames)[:n])
        curves["random"].append(arm_curve(random_dir, frames)[:n])
    arms = {s: mean_curve(c) for s, c in curves.items()}
    result = {
        "config": args.config,
        "seeds": args.seeds or [int(base["seed"])],
        "arms_dirs": [[str(a.relative_to(ROOT)), str(r.relative_to(ROOT))] for a, r in pairs],
        "shared_iteration_0": True,
        "test_frames": len(frames),
        "test_frames_drawn": drawn,
        "test_frames_note": "frames from the tail of a halted iteration-0 run left out",
        "wall_s": walls,
        "arms": arms,
        **efficiency(arms["uncertainty"], arms["random"]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "al_efficiency.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "al_efficiency.png").write_bytes(learning_curve_png(arms))
    print(f"{'arm':12} {'iter':>4} {'frames':>7} {'core-h':>7} {'F RMSE':>7} {'E RMSE':>7}")
    for name, rows in arms.items():
        for r in rows:
            print(
                f"{name:12} {r['iteration']:4d} {r['dft_frames']:7.1f} "
                f"{r['dft_core_seconds'] / 3600:7.3f} {r['force_rmse_ev_per_a']:7.3f} "
                f"{r['energy_rmse_mev_per_atom']:7.1f}"
            )
    print(
        f"frames_ratio {result['frames_ratio']}, core_seconds_ratio "
        f"{result['core_seconds_ratio']} (never reached: {result['never_reached']}) on "
        f"{len(frames)} shared test frames"
    )


if __name__ == "__main__":
    main()
