"""Train one committee member with `nequip-train` in a subprocess and write its metrics.

Everything of a member lives in its folder: `nequip.yaml` (the Hydra config), `best.ckpt`,
`last.ckpt`, `csv/metrics.csv` (per-epoch log), `train.log` (Hydra's log), `metrics.json`, and the
scratch folders `.tmp/` and `.cache/` (TMPDIR and TorchInductor cache, removed when done).
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from potforge.errors import ModelError, TrainingError
from potforge.io import read_frames, write_json
from potforge.train.nequip_config import (
    CONFIG_NAME,
    CSV_LOG_NAME,
    MONITOR,
    SplitFiles,
    render_config,
    write_config,
)
from potforge.train.settings import member_seed, resolve_train_settings

METRICS_FILE = "metrics.json"
BEST_CHECKPOINT = "best.ckpt"
VAL_FORCE_MAE = "val0_epoch/forces_mae"
RETRY_LR_FACTOR = 10.0  # a diverged member is retried once at a tenth of the learning rate
EXPLODED_FACTOR = 20.0  # validation loss above this multiple of epoch 1's: diverged
FROZEN_EPOCHS = 4  # this many epochs in a row with the same validation loss: the network died


def training_device() -> str:
    """Return 'cuda' when torch sees a GPU, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def scratch_environment(out_dir: Path, threads: int) -> dict[str, str]:
    """Return a NequIP subprocess environment: its threads, temp and cache dirs in out_dir."""
    env = dict(os.environ)
    threads_s = str(max(1, int(threads)))
    env.update(
        OMP_NUM_THREADS=threads_s,
        MKL_NUM_THREADS=threads_s,
        OPENBLAS_NUM_THREADS=threads_s,
        TMPDIR=str(out_dir / ".tmp"),
        TORCHINDUCTOR_CACHE_DIR=str(out_dir / ".cache" / "inductor"),
        TRITON_CACHE_DIR=str(out_dir / ".cache" / "triton"),
        MPLCONFIGDIR=str(out_dir / ".cache" / "matplotlib"),
        PYTHONUNBUFFERED="1",
    )
    (out_dir / ".tmp").mkdir(parents=True, exist_ok=True)
    return env


def nequip_script(name: str) -> str:
    """Return the path of a NequIP console script installed beside this Python."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def run_streamed(cmd: Sequence[str], cwd: Path, env: Mapping[str, str], what: str) -> None:
    """Run a command, echoing its output line by line to stdout; raise TrainingError on failure."""
    tail: deque[str] = deque(maxlen=25)
    with subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            tail.append(line.rstrip())
        rc = proc.wait()
    if rc != 0:
        last = "\n  ".join(tail)
        raise TrainingError(f"{what}: `{cmd[0]}` exited with {rc}; last output:\n  {last}")


def clear_scratch(out_dir: Path) -> None:
    """Remove the member's temporary and cache folders."""
    for name in (".tmp", ".cache"):
        shutil.rmtree(out_dir / name, ignore_errors=True)


def validation_curve(out_dir: str | Path, metric: str = VAL_FORCE_MAE) -> list[float]:
    """Return one validation metric per epoch from the member's CSV log."""
    path = Path(out_dir) / CSV_LOG_NAME / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [float(r[metric]) for r in rows if r.get(metric) not in (None, "")]


def divergence(curve: Sequence[float]) -> str | None:
    """Say how a validation-loss curve diverged, or None when it did not.

    Diverged: an epoch's loss is not finite, exceeds EXPLODED_FACTOR times the first epoch's
    (healthy runs measured here peak at 1.5 times their first epoch), or stays bit-identical for
    FROZEN_EPOCHS epochs in a row: the step was so large that the network died (constant output,
    zero gradients), seen at learning rate 1 on 2-atom Si cells. Adam moves a live network's
    weights every step, so its validation loss never repeats exactly.
    """
    for epoch, value in enumerate(curve, start=1):
        if not math.isfinite(value):
            return f"validation loss {value} at epoch {epoch}"
        if value > EXPLODED_FACTOR * curve[0]:
            return (
                f"validation loss {value:.3g} at epoch {epoch}, over {EXPLODED_FACTOR:g} times "
                f"epoch 1's {curve[0]:.3g}"
            )
        first = epoch - FROZEN_EPOCHS
        if first >= 0 and len(set(curve[first:epoch])) == 1:
            return (
                f"validation loss frozen at {value:.6g} for epochs {first + 1}-{epoch} "
                "(the network stopped learning)"
            )
    return None


def train_loop_seconds(out_dir: str | Path) -> float | None:
    """Return the seconds between TRAIN RUN START and END in the member's Hydra log, if logged."""
    from datetime import datetime

    path = Path(out_dir) / "train.log"
    if not path.is_file():
        return None
    stamps = {}
    for line in path.read_text(errors="replace").splitlines():
        for marker in ("TRAIN RUN START", "TRAIN RUN END"):
            if line.rstrip().endswith(marker) and line.startswith("["):
                stamps[marker] = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
    if len(stamps) != 2:
        return None
    return round((stamps["TRAIN RUN END"] - stamps["TRAIN RUN START"]).total_seconds(), 3)


def evaluate_member(checkpoint: Path, splits: SplitFiles) -> dict[str, Any]:
    """Return validation and test error metrics of a checkpoint's (EMA) model."""
    from potforge.train.accuracy import error_metrics
    from potforge.train.models import load_model, predict

    potential = load_model(checkpoint)
    result: dict[str, Any] = {}
    for name, path in (("validation", splits.validation), ("test", splits.test)):
        frames = read_frames(path)
        result[name] = (
            error_metrics(frames, predict(potential, frames, stress=True)) if frames else None
        )
    return result


def train_member(
    settings: Mapping[str, Any] | str | None,
    species: Sequence[str],
    splits: SplitFiles,
    out_dir: str | Path,
    member: int,
    campaign_seed: int,
    init: str | Path | None = None,
    threads: int = 1,
    epochs: int | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train member `member` into out_dir (from scratch or warm from `init`); return metrics.

    The member's portable package (model.nequip.zip) is built here too, in this process (about
    a second; a separate job would import torch and nequip again: ten), cached in `cache_dir`.
    """
    import torch

    settings = resolve_train_settings(settings)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    init_path = Path(init).resolve() if init else None
    if init_path is not None and not settings["warm_start"]:
        print(f"potforge: train.warm_start is false, ignoring --init {init_path}", flush=True)
        init_path = None
    if init_path is not None:
        _check_init(init_path, species)
    if epochs is None:
        epochs = settings["warm_epochs"] if init_path else settings["epochs"]
    seed = member_seed(campaign_seed, member)
    device = training_device()

    def fit(run_settings: Mapping[str, Any]) -> float:
        config = render_config(
            run_settings,
            species,
            splits,
            seed,
            epochs,
            init_path,
            "gpu" if device == "cuda" else "cpu",
        )
        for stale in (BEST_CHECKPOINT, "last.ckpt", METRICS_FILE):
            (out_dir / stale).unlink(missing_ok=True)
        shutil.rmtree(out_dir / CSV_LOG_NAME, ignore_errors=True)
        write_config(config, out_dir)
        cmd = [
            nequip_script("nequip-train"),
            "-cp",
            str(out_dir),
            "-cn",
            CONFIG_NAME,
            f"hydra.run.dir={out_dir}",
        ]
        print(
            f"potforge: training member {member} (seed {seed}, {epochs} epochs, {device}, "
            f"learning rate {run_settings['learning_rate']:g})",
            flush=True,
        )
        start = time.monotonic()
        try:
            run_streamed(
                cmd, out_dir, scratch_environment(out_dir, threads), f"member {member} in {out_dir}"
            )
        finally:
            clear_scratch(out_dir)
        return time.monotonic() - start

    wall = fit(settings)
    retried = None
    bad = divergence(validation_curve(out_dir, MONITOR))
    if bad is not None:
        safer = {**settings, "learning_rate": settings["learning_rate"] / RETRY_LR_FACTOR}
        retried = {"why": bad, "learning_rate": safer["learning_rate"]}
        print(
            f"potforge: member {member} diverged ({bad}); retrying once with learning rate "
            f"{safer['learning_rate']:g}",
            flush=True,
        )
        wall += fit(safer)
        again = divergence(validation_curve(out_dir, MONITOR))
        if again is not None:
            (out_dir / BEST_CHECKPOINT).unlink(missing_ok=True)
            raise TrainingError(
                f"{out_dir}: training diverged twice ({bad} at learning rate "
                f"{settings['learning_rate']:g}, then {again} at {safer['learning_rate']:g}); "
                "lower train.learning_rate or look for bad labels in the dataset"
            )
    best = out_dir / BEST_CHECKPOINT
    if not best.is_file():
        raise TrainingError(f"{out_dir}: nequip-train finished without writing {BEST_CHECKPOINT}")

    torch.set_num_threads(max(1, int(threads)))
    curve = validation_curve(out_dir)
    weighted = validation_curve(out_dir, MONITOR)
    metrics: dict[str, Any] = {
        "member": member,
        "seed": seed,
        "species": list(species),
        "init": str(init_path) if init_path else None,
        "warm_start": init_path is not None,
        "max_epochs": epochs,
        "epochs_run": len(weighted),
        "keep_epoch": settings.get("keep_epoch", "best"),
        "best_epoch": kept_epoch(weighted, settings.get("keep_epoch", "best")),
        "train_loop_s": train_loop_seconds(out_dir),
        "wall_time_s": round(wall, 2),
        "retried": retried,
        "device": device,
        "threads": int(threads),
        "frames": {
            name: len(read_frames(getattr(splits, name)))
            for name in ("train", "validation", "test")
        },
        "validation_force_mae_per_epoch": curve,
        **evaluate_member(best, splits),
    }
    _check_finite(metrics, out_dir)
    from potforge.train.deploy import deploy_member

    packaged = deploy_member(out_dir, [], cache_dir=cache_dir, device="cpu", threads=threads)
    metrics["package_s"] = packaged["artefacts"]["package"]["seconds"]
    write_json(out_dir / METRICS_FILE, metrics)
    return metrics


def kept_epoch(weighted: Sequence[float], keep: str) -> int | None:
    """The 1-based epoch in best.ckpt: the lowest validation loss, or the last with `last`."""
    if not weighted:
        return None
    if keep == "last":
        return len(weighted)
    return 1 + min(range(len(weighted)), key=weighted.__getitem__)


def _check_init(init: Path, species: Sequence[str]) -> None:
    from potforge.train.models import load_model

    try:
        names = load_model(init).type_names
    except ModelError as exc:
        raise TrainingError(f"warm start: {exc}") from None
    if list(names) != list(species):
        raise TrainingError(
            f"{init}: warm start needs the same species in the same order, the model has {names} "
            f"and this member {list(species)}; train from scratch (drop --init)"
        )


def _check_finite(metrics: Mapping[str, Any], out_dir: Path) -> None:
    for split in ("validation", "test"):
        values = metrics.get(split) or {}
        for key, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise TrainingError(
                    f"{out_dir}: {split} {key} is {value}; training diverged, "
                    "lower train.learning_rate"
                )
