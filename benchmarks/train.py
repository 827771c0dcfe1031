"""Benchmark of the NequIP committee stage on CPU: epoch time, warm-start gain, scorer throughput.

Data: 200 rattled and strained Si8 cells labelled by GPAW (PBE, PW 150 eV, Gamma point only):
real DFT but deliberately cheap, cached under benchmarks/.cache. Model: the schema defaults of the
`train:` section (32 features, l_max 1, 2 layers, radial MLP 1x64, float32).

    python benchmarks/train.py [--epochs 30] [--threads 2] [--frames 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "train"
RESULT = HERE / "results" / "train.json"
BENCH_DFT = {
    "ecut": 150,
    "kpt_density": 0.5,
    "gamma": True,
    "maxiter": 200,
    "frame_timeout_s": 600,
}


def si8_frames(n: int, seed: int = 11):
    """Return n rattled, strained 8-atom diamond Si cells (unlabelled)."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    base = bulk("Si", "diamond", a=5.43, cubic=True)
    frames = []
    for k in range(n):
        atoms = base.copy()
        strain = np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3)) * np.array([[1, 0.3, 0.3]] * 3)
        atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        atoms.info.update(system="Si8", generator="benchmark", origin=f"bench{k}")
        frames.append(atoms)
    return frames


def labelled_si8(n: int):
    """Label (or reuse from the cache) n Si8 frames with the cheap GPAW protocol."""
    from potforge.config import validate_config
    from potforge.dft.label import label_frames

    shell = {"campaign": "bench", "systems": {"si": {"structure": {"prototype": "diamond"}}}}
    dft = validate_config({**shell, "dft": BENCH_DFT})["dft"]
    start = time.monotonic()
    report = label_frames(si8_frames(n), dft, CACHE / "labels", log=lambda _: None)
    print(
        f"labels: {len(report.labelled)} frames ({report.computed} computed) "
        f"in {time.monotonic() - start:.0f} s"
    )
    return report.labelled


def split(frames, root: Path):
    """Write a 160/20/20 split."""
    from potforge.io import write_frames
    from potforge.train.nequip_config import SplitFiles

    n_val = n_test = len(frames) // 10
    n_train = len(frames) - n_val - n_test
    root.mkdir(parents=True, exist_ok=True)
    write_frames(root / "train.extxyz", frames[:n_train])
    write_frames(root / "validation.extxyz", frames[n_train : n_train + n_val])
    write_frames(root / "test.extxyz", frames[n_train + n_val :])
    return SplitFiles.in_dir(root)


def epochs_to_reach(curve: list[float], target: float) -> int | None:
    """Return the first epoch (1-based) whose validation force MAE is at or below target."""
    for k, value in enumerate(curve):
        if value <= target:
            return k + 1
    return None


def train_runs(splits, epochs: int, threads: int):
    """Train member 0 from scratch, then warm-start it from its own checkpoint on the same data."""
    from potforge.io import read_json
    from potforge.train.member import train_member

    runs = {}
    for name, init in (("scratch", None), ("warm", CACHE / "runs" / "scratch" / "best.ckpt")):
        out = CACHE / "runs" / name
        if (out / "metrics.json").is_file() and read_json(out / "metrics.json")[
            "max_epochs"
        ] == epochs:
            runs[name] = read_json(out / "metrics.json")
            continue
        runs[name] = train_member(
            {}, ["Si"], splits, out, 0, 2026, init=init, threads=threads, epochs=epochs
        )
    return runs


def scorer_throughput(member_dir: Path, threads: int, n_frames: int = 400) -> dict:
    """Frames per second of a K=4 committee on Si64 frames, compiled and eager."""
    import torch

    from potforge.train.committee import load_committee, score_frames
    from potforge.train.deploy import deploy_member

    torch.set_num_threads(threads)
    report = deploy_member(member_dir, ["ase"], cache_dir=CACHE / "model-cache", threads=threads)
    frames = []
    for k, atoms in enumerate(si8_frames(n_frames, seed=5)):
        big = atoms.repeat((2, 2, 2))
        big.rattle(0.05, seed=k)
        frames.append(big)
    results = {"compile": report["artefacts"]["ase"]}
    for kind, path in (
        ("compiled", Path(report["artefacts"]["ase"]["path"])),
        ("eager", member_dir / "best.ckpt"),
    ):
        members = load_committee([path] * 4)
        score_frames(members, frames[:8])  # warm-up
        start = time.monotonic()
        scores = score_frames(members, frames)
        seconds = time.monotonic() - start
        results[kind] = {
            "frames_per_s": n_frames / seconds,
            "seconds": seconds,
            "max_deviation": float(scores.max_force_deviation.max()),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()

    import torch

    frames = labelled_si8(args.frames)
    splits = split(frames, CACHE / "data")
    runs = train_runs(splits, args.epochs, args.threads)
    scratch, warm = runs["scratch"], runs["warm"]
    scratch_curve = scratch["validation_force_mae_per_epoch"]
    target = min(scratch_curve)
    scratch_reach = scratch_curve.index(target) + 1
    warm_reach = epochs_to_reach(warm["validation_force_mae_per_epoch"], target)
    scorer = scorer_throughput(CACHE / "runs" / "scratch", args.threads)
    result = {
        "s_per_epoch_200_frames_si8": scratch["train_loop_s"] / scratch["epochs_run"],
        "warm_start_epochs_ratio": (warm_reach / scratch_reach) if warm_reach else None,
        "scorer_frames_per_s_si64_k4": scorer["compiled"]["frames_per_s"],
        "scorer_frames_per_s_si64_k4_eager": scorer["eager"]["frames_per_s"],
        "details": {
            "data": f"{len(frames)} rattled/strained Si8 cells, GPAW PBE PW(150 eV) Gamma-only "
            "(cheap real DFT labels); split "
            + "/".join(str(v) for v in scratch["frames"].values()),
            "model": "train-section schema defaults (32 features, l_max 1, 2 layers, float32)",
            "s_per_epoch_note": "Lightning fit loop (training on 160 frames plus validation on "
            "20, every epoch) divided by epochs run; process start-up and the final test excluded",
            "scratch_wall_time_s": scratch["wall_time_s"],
            "warm_wall_time_s": warm["wall_time_s"],
            "epochs": args.epochs,
            "scratch_best_val_force_mae": target,
            "scratch_epochs_to_best": scratch_reach,
            "warm_epochs_to_reach_scratch_best": warm_reach,
            "scratch_test": scratch["test"],
            "warm_test": warm["test"],
            "scorer_note": "K=4 loaded instances of one member (throughput does not depend on "
            "the weights); 400 Si64 frames, neighbour lists included, frames merged in graphs "
            "of up to 4096 atoms",
            "compile": scorer["compile"],
            "threads": args.threads,
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
        },
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'metric':40s} value")
    for key in (
        "s_per_epoch_200_frames_si8",
        "warm_start_epochs_ratio",
        "scorer_frames_per_s_si64_k4",
        "scorer_frames_per_s_si64_k4_eager",
    ):
        value = result[key]
        print(f"{key:40s} {value:.3f}" if value is not None else f"{key:40s} n/a")
    print(f"written {RESULT}")


if __name__ == "__main__":
    main()
