"""Deploy a member: `nequip-package build` a portable zip, `nequip-compile` AOTInductor targets.

Compiling costs about a minute on a CPU, so every artefact is cached by a content key (checkpoint
bytes, target, device, torch and nequip versions, CPU instruction set) in a cache folder of the
results tree: deploying an unchanged checkpoint again copies the cached file instead. Given a
sibling member already compiled for a target (`template`), a member's compiled model is that
model with its weights swapped in (potforge.train.weight_swap), checked against the member's own
model; a compile runs only when the swap does not fit.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from potforge.errors import TrainingError
from potforge.io import atomic_write
from potforge.train.member import (
    BEST_CHECKPOINT,
    clear_scratch,
    nequip_script,
    run_streamed,
    scratch_environment,
)
from potforge.train.nequip_config import CONFIG_NAME

TARGETS = ("ase", "pair_nequip")
PACKAGE_NAME = "model.nequip.zip"


def compiled_name(target: str) -> str:
    """Return the file name of a member's compiled model for a target, e.g. model.ase.nequip.pt2."""
    return f"model.{target}.nequip.pt2"


def parse_targets(text: str | Sequence[str]) -> list[str]:
    """Parse 'ase,pair_nequip' (or a list) into known compile targets; '' or 'none' gives none."""
    items = text.split(",") if isinstance(text, str) else list(text)
    targets = [t.strip() for t in items if t.strip() and t.strip().lower() != "none"]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise TrainingError(f"compile targets: unknown {unknown}; choose from {', '.join(TARGETS)}")
    return targets


def cpu_isa() -> str:
    """Return the CPU instruction set torch compiles for (e.g. AVX512), with the machine type."""
    import torch

    return f"{platform.machine()}-{torch.backends.cpu.get_cpu_capability()}"


def artefact_key(checkpoint: Path, target: str, device: str) -> str:
    """Return the cache key of one deployed artefact of a checkpoint.

    Versions come from the installed distributions: a package-only deploy never imports torch
    (six of its sixteen seconds on a CPU).
    """
    from importlib.metadata import version

    h = hashlib.sha256()
    with open(checkpoint, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    isa = cpu_isa() if device == "cpu" else _gpu_name() if device == "cuda" else ""
    h.update(
        f"|{target}|{device}|torch {version('torch')}|nequip {version('nequip')}|{isa}".encode()
    )
    return h.hexdigest()[:20]


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name()


def build_package(checkpoint: Path, dest: Path) -> None:
    """`nequip-package build` a checkpoint into `dest`, in this process.

    NequIP keeps, per process, the package importer of the first package a build loads (the one a
    warm-started checkpoint came from) and reuses it for every later build: a second warm-started
    member packaged in the same process got the first one's importer, and forces 0.007-0.015 eV/A
    off its own checkpoint (seen in `potforge rebuild`). The importer is dropped before and after
    each build, as a fresh process would have it. NequIP also makes float64 the default dtype while
    it builds; that is put back afterwards, as when loading a model (potforge.train.models).
    """
    import torch
    from nequip.model.saved_models import package as nequip_saved_package
    from nequip.scripts.package import main as nequip_package

    from potforge.train.models import forget_nequip_global_state

    default_dtype = torch.get_default_dtype()
    nequip_saved_package._PACKAGE_TIME_SHARED_IMPORTER = None
    try:
        nequip_package(["build", str(checkpoint), str(dest)])
    except Exception as exc:
        raise TrainingError(f"nequip-package of {checkpoint} failed: {exc}") from exc
    finally:
        nequip_saved_package._PACKAGE_TIME_SHARED_IMPORTER = None
        torch.set_default_dtype(default_dtype)
        forget_nequip_global_state()
    if not dest.is_file():
        raise TrainingError(f"nequip-package of {checkpoint} wrote no {dest.name}")


def _from_cache_or_build(
    key: str, suffix: str, out: Path, cache_dir: Path, build: Any
) -> tuple[Path, bool]:
    import filecmp

    cached = cache_dir / f"{key}{suffix}"
    hit = cached.is_file()
    if not hit:
        build(cached)
    if not (out.is_file() and filecmp.cmp(cached, out, shallow=False)):
        atomic_write(out, lambda tmp: shutil.copyfile(cached, tmp))  # an equal file stays as is
    return out, hit


def deploy_member(
    member_dir: str | Path,
    targets: Sequence[str] = TARGETS,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    threads: int = 1,
    template: str | Path | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Package a member's best.ckpt, compile it for each target; report what was built or reused.

    `template`: a sibling member folder (same architecture and data) whose compiled models are
    reused with this member's weights where they fit.
    """
    from potforge.train.member import training_device

    member_dir = Path(member_dir).resolve()
    checkpoint = member_dir / BEST_CHECKPOINT
    if not checkpoint.is_file():
        raise TrainingError(f"{checkpoint}: no checkpoint to deploy; train the member first")
    targets = parse_targets(list(targets))
    device = device or (training_device() if targets else "cpu")
    cache = Path(cache_dir).resolve() if cache_dir else member_dir.parent / ".model-cache"
    cache.mkdir(parents=True, exist_ok=True)
    env = scratch_environment(member_dir, threads)
    env["TORCHINDUCTOR_CACHE_DIR"] = str(cache / "inductor")
    report: dict[str, Any] = {"member_dir": str(member_dir), "device": device, "artefacts": {}}
    try:
        package_key = artefact_key(checkpoint, "package", "any")

        def _package(dest: Path) -> None:
            tmp = dest.with_name(f".{dest.stem}.building.nequip.zip")
            build_package(checkpoint, tmp)
            tmp.replace(dest)

        start = time.monotonic()
        package, hit = _from_cache_or_build(
            package_key, ".nequip.zip", member_dir / PACKAGE_NAME, cache, _package
        )
        report["artefacts"]["package"] = _entry(package, hit, start)

        example = _example_graph(member_dir) if targets else None
        for target in targets:
            method = {"how": "compile"}

            def _compile(dest: Path, target: str = target, method: dict = method) -> None:
                if template is not None and device == "cpu":
                    swapped = _swap_from(
                        Path(template), target, package, dest, member_dir, log, threads
                    )
                    if swapped is not None:
                        method.update(how="weight swap", **swapped)
                        return
                tmp = dest.with_name(f".{dest.name}.building.nequip.pt2")
                cmd = [
                    nequip_script("nequip-compile"),
                    str(package),
                    str(tmp),
                    "--mode",
                    "aotinductor",
                    "--device",
                    device,
                    "--target",
                    target,
                    "--data-path",
                    str(example),
                ]
                run_streamed(cmd, member_dir, env, f"nequip-compile --target {target} of {package}")
                tmp.replace(dest)

            start = time.monotonic()
            key = artefact_key(checkpoint, target, device)
            path, hit = _from_cache_or_build(
                key, ".nequip.pt2", member_dir / compiled_name(target), cache, _compile
            )
            how = {"how": "cache"} if hit else method
            report["artefacts"][target] = {**_entry(path, hit, start), **how}
    finally:
        clear_scratch(member_dir)
    return report


def _swap_from(
    template: Path,
    target: str,
    package: Path,
    dest: Path,
    member_dir: Path,
    log: Any,
    threads: int,
) -> dict[str, Any] | None:
    """Build `dest` from the template's compiled model and this member's weights; None: no fit."""
    import torch

    from potforge.train.weight_swap import WeightSwapError, swap_weights

    torch.set_num_threads(threads)
    compiled, source = template.resolve() / compiled_name(target), template.resolve() / PACKAGE_NAME
    if not (compiled.is_file() and source.is_file()):
        log(f"[deploy] {template}: no compiled {target} model and package to reuse; compiling")
        return None
    try:
        report = swap_weights(compiled, source, package, dest, _check_frames(member_dir))
    except WeightSwapError as exc:
        log(f"[deploy] weight swap from {template} does not fit ({exc}); compiling")
        return None
    log(
        f"[deploy] {target}: weights swapped into {compiled} ({report['swapped']} tensors); "
        f"largest gap to the member's own model {report['max_gap']['force_ev_per_a']:.1e} eV/A"
    )
    return {"template": str(compiled), "max_gap": report["max_gap"]}


def _check_frames(member_dir: Path) -> list[Any]:
    """Up to three training frames of a member, to check a deployed model against its own."""
    from potforge.io import read_frames

    return read_frames(_member_config(member_dir)[1])[:3]


def _member_config(member_dir: Path) -> tuple[dict[str, Any], Path]:
    """A member's NequIP config and the training file it names (both must exist)."""
    import yaml

    config_path = member_dir / f"{CONFIG_NAME}.yaml"
    if not config_path.is_file():
        raise TrainingError(
            f"{config_path}: missing; the member folder was not made by train-member"
        )
    config = yaml.safe_load(config_path.read_text())
    train_file = Path(config["data"]["train_file_path"])
    if not train_file.is_file():
        raise TrainingError(
            f"{train_file}: the member's training file is gone; rerun the dataset stage"
        )
    return config, train_file


def _example_graph(member_dir: Path) -> Path:
    """Write a member's tracing example (from its training file) into its scratch folder."""
    from potforge.io import read_frames
    from potforge.train.compile_data import write_compile_data

    config, train_file = _member_config(member_dir)
    frame = read_frames(train_file)[0]
    out = member_dir / ".tmp" / "compile_example.pt"
    return write_compile_data(frame, config["model_type_names"], config["cutoff_radius"], out)


def _entry(path: Path, cached: bool, start: float) -> dict[str, Any]:
    return {"path": str(path), "cached": cached, "seconds": round(time.monotonic() - start, 2)}
