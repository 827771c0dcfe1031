"""Active learning against random sampling at equal DFT cost (issue 16).

Runs two arms of the same campaign, `select.strategy: uncertainty` and `select.strategy: random`,
for the same iterations and frames per iteration, one after the other on this machine, then
measures every iteration's committee of both arms on the shared independent test set
(`potforge compare`: the union of the arms' labelled test sets; iteration 0 is the same in both
arms, so their test sets coincide). Writes benchmarks/results/al_efficiency.json and the
learning-curve plot benchmarks/results/al_efficiency.png.

The arms are the default campaign (config/config.yaml) with a reduced validation, so that each
arm runs in under 30 minutes on 2 cores: no per-iteration validation, no properties, no peers,
no MD stability (none of them enters the comparison, which needs only the test set).

    python benchmarks/al_efficiency.py                 # one seed per arm
    python benchmarks/al_efficiency.py --seeds 2026 7  # more seeds, averaged per iteration
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


def arm_config(base: dict, strategy: str, seed: int) -> dict:
    """The campaign as one arm: its strategy and seed, validation reduced to the test set."""
    config = copy.deepcopy(base)
    config["campaign"] = f"al-{strategy}-s{seed}"
    config["seed"] = seed
    config.setdefault("select", {})["strategy"] = strategy
    validate = config.setdefault("validate", {})
    validate.update(every_iteration=False, peers=[], md_stability=None)
    validate.pop("properties", None)
    for system in config["systems"].values():
        system.setdefault("validate", {})["properties"] = False
    return config


def run_arm(config: dict, out_dir: Path) -> float:
    """Run one arm with the local profile; return its wall time."""
    path = out_dir / f"{config['campaign']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    start = time.monotonic()
    cmd = ["snakemake", "--profile", "profiles/local", "--configfile", str(path)]
    cmd.append(f"results/{config['campaign']}/final/model_card.json")
    print(f"[al] running {config['campaign']}: {' '.join(cmd)}", flush=True)
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


def main() -> None:
    """Run both arms for every seed, compare, write the JSON and the plot."""
    from potforge.compare import arm_curve, efficiency, learning_curve_png, shared_test_set
    from potforge.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2026])
    parser.add_argument("--skip-run", action="store_true", help="only measure finished arms")
    args = parser.parse_args()
    base = yaml.safe_load((ROOT / args.config).read_text())
    load_config(ROOT / args.config)  # fail early on a broken config
    configs = RESULTS / "al_efficiency_configs"
    configs.mkdir(parents=True, exist_ok=True)
    walls: dict[str, float] = {}
    dirs: dict[str, list[Path]] = {"uncertainty": [], "random": []}
    for seed in args.seeds:
        for strategy in dirs:
            config = arm_config(base, strategy, seed)
            if not args.skip_run:
                walls[config["campaign"]] = round(run_arm(config, configs), 1)
            dirs[strategy].append(ROOT / "results" / config["campaign"])
    frames = shared_test_set([d for ds in dirs.values() for d in ds])
    per_seed = {s: [arm_curve(d, frames) for d in ds] for s, ds in dirs.items()}
    arms = {s: mean_curve(curves) for s, curves in per_seed.items()}
    result = {
        "config": args.config,
        "seeds": args.seeds,
        "reduced": "validation reduced to the test set (no properties, peers, MD stability)",
        "test_frames": len(frames),
        "wall_s": walls,
        "arms": arms,
        "per_seed": {
            s: dict(zip(map(str, args.seeds), c, strict=True)) for s, c in per_seed.items()
        },
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
