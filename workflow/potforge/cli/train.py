"""`potforge train-member | deploy | committee | committee-score`: the NequIP committee stage."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from potforge.errors import ModelError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the training, deployment and committee subcommands."""
    p = subparsers.add_parser("train-member", help="train one NequIP committee member")
    p.add_argument("--train-settings", default="{}", help="the config's `train` section as JSON")
    p.add_argument("--species", nargs="+", required=True, help="model type names, e.g. O Hf")
    p.add_argument("--data-dir", help="folder with train/validation/test.extxyz")
    p.add_argument("--train", help="training split (instead of --data-dir)")
    p.add_argument("--validation", help="validation split (instead of --data-dir)")
    p.add_argument("--test", help="test split (instead of --data-dir)")
    p.add_argument("--member", type=int, required=True, help="member index 0..K-1")
    p.add_argument("--seed", type=int, required=True, help="campaign seed")
    p.add_argument("--out", required=True, help="member folder (created)")
    p.add_argument("--init", help="previous-iteration best.ckpt or model.nequip.zip (warm start)")
    p.add_argument("--epochs", type=int, help="override the epochs of the settings")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument(
        "--protocol-check", help="the protocol check's JSON: no stress loss when it failed"
    )
    p.add_argument(
        "--cache-dir", help="model cache for the package (default: <out>/../.model-cache)"
    )
    p.set_defaults(func=run_train_member)

    p = subparsers.add_parser("deploy", help="package a member and compile it for targets")
    p.add_argument("--member-dir", required=True, help="member folder holding best.ckpt")
    p.add_argument("--targets", default="ase,pair_nequip", help="comma list of ase, pair_nequip")
    p.add_argument(
        "--cache-dir", help="compiled-model cache (default: <member-dir>/../.model-cache)"
    )
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda if available")
    p.add_argument("--threads", type=int, default=1, help="compiler and torch threads")
    p.add_argument("--report", help="write what was built or reused as JSON here")
    p.add_argument(
        "--template-dir",
        help="a sibling member folder already compiled: reuse its compiled code with this "
        "member's weights where it fits (checked against the member's own model)",
    )
    p.set_defaults(func=run_deploy)

    p = subparsers.add_parser("committee", help="committee errors on the test split (JSON)")
    _add_members(p)
    p.add_argument("--test", required=True, help="labelled frames (extxyz)")
    p.add_argument(
        "--protocol-check", help="protocol_check.json: wrong stress labels are not measured"
    )
    p.add_argument("--out", required=True, help="summary JSON")
    p.set_defaults(func=run_committee)

    p = subparsers.add_parser("committee-score", help="per-frame committee force deviation")
    _add_members(p)
    p.add_argument("--frames", required=True, help="frames to score (any ASE-readable file)")
    p.add_argument("--out", required=True, help="JSON with per-frame deviation and energies")
    p.set_defaults(func=run_committee_score)


def _add_members(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--members",
        nargs="+",
        required=True,
        help="member folders or model files (.nequip.pt2, .nequip.zip, .ckpt)",
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1, help="torch threads")


def member_model_file(path: str | Path) -> Path:
    """Return the model file to score with: the file, or a member folder's fastest model."""
    from potforge.train.deploy import PACKAGE_NAME, compiled_name
    from potforge.train.member import BEST_CHECKPOINT

    path = Path(path)
    if not path.is_dir():
        return path
    preferred = (compiled_name("ase"), compiled_name("pair_nequip"), PACKAGE_NAME, BEST_CHECKPOINT)
    for name in preferred:
        if (path / name).is_file():
            return path / name
    raise ModelError(f"{path}: member folder holds no model; run train-member and deploy first")


def _species(items: list[str]) -> list[str]:
    return [s for item in items for s in item.replace(",", " ").split()]


def run_train_member(args: argparse.Namespace) -> int:
    """Train one member and print its metrics."""
    from potforge.errors import ConfigError
    from potforge.train.member import train_member
    from potforge.train.nequip_config import SplitFiles

    if args.data_dir:
        splits = SplitFiles.in_dir(args.data_dir)
    elif args.train and args.validation and args.test:
        splits = SplitFiles(Path(args.train), Path(args.validation), Path(args.test))
    else:
        raise ConfigError("train-member: give --data-dir, or all of --train --validation --test")
    settings = json.loads(args.train_settings)
    if args.protocol_check:
        from potforge.io import read_json
        from potforge.train.settings import settings_as_trained

        check = read_json(args.protocol_check)
        settings = settings_as_trained(settings, check)
        if not check["train_on_stress"]:
            print("[train] the protocol check found the DFT stress inconsistent: stress weight 0")
    metrics = train_member(
        settings,
        _species(args.species),
        splits,
        args.out,
        member=args.member,
        campaign_seed=args.seed,
        init=args.init,
        threads=args.threads,
        epochs=args.epochs,
        cache_dir=args.cache_dir,
    )
    brief = {k: metrics[k] for k in ("member", "seed", "epochs_run", "wall_time_s", "device")}
    print(json.dumps({**brief, "validation": metrics["validation"], "test": metrics["test"]}))
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    """Package and compile one member."""
    from potforge.io import write_json
    from potforge.train.deploy import deploy_member, parse_targets

    report = deploy_member(
        args.member_dir,
        parse_targets(args.targets),
        cache_dir=args.cache_dir,
        device=args.device,
        threads=args.threads,
        template=args.template_dir,
    )
    if args.report:
        write_json(args.report, report)
    print(json.dumps(report))
    return 0


def _load(args: argparse.Namespace) -> list:
    import torch

    from potforge.train.committee import load_committee

    torch.set_num_threads(max(1, args.threads))
    return load_committee([member_model_file(m) for m in args.members], args.device)


def run_committee(args: argparse.Namespace) -> int:
    """Write committee-mean and per-member errors on a labelled split."""
    from potforge.io import read_frames, read_json, write_json
    from potforge.train.accuracy import measured_labels
    from potforge.train.committee import committee_summary

    frames, stress_note = measured_labels(
        read_frames(args.test), read_json(args.protocol_check) if args.protocol_check else None
    )
    summary = committee_summary(_load(args), frames, Path(args.test).stem)
    if stress_note:
        summary["stress_note"] = stress_note
    write_json(args.out, summary)
    print(json.dumps({"committee_mean": summary["committee_mean"]}))
    return 0


def run_committee_score(args: argparse.Namespace) -> int:
    """Write per-frame max force deviation, mean energy and energy spread of the committee."""
    from ase.io import read

    from potforge.io import write_json
    from potforge.train.committee import score_frames

    frames = list(read(args.frames, index=":")) if Path(args.frames).stat().st_size else []
    scores = score_frames(_load(args), frames)
    n_atoms = [len(a) for a in frames]
    write_json(
        args.out,
        {
            "frames": len(frames),
            "max_force_deviation": scores.max_force_deviation,
            "energy_mean": scores.mean_energies(),
            "energy_std_per_atom": scores.energies.std(axis=0) / n_atoms if frames else [],
        },
    )
    return 0
