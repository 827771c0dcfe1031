"""Subcommands of the loop: `select`, `finalize`, `status`."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from potforge.io import read_frames, read_json, read_trajectories, write_frames, write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the selection, finalisation and status subcommands."""
    p = subparsers.add_parser("select", help="pick uncertain, diverse frames from explorations")
    p.add_argument(
        "--trajectories",
        nargs="+",
        required=True,
        help="explore/<system>/<task>/trajectory.extxyz files",
    )
    p.add_argument(
        "--exclude", help="the independent test set: its frames and their MD neighbours stay out"
    )
    p.add_argument("--trust", required=True, help="JSON: system -> {lo, hi}")
    p.add_argument("--species", nargs="+", required=True)
    p.add_argument("--select", required=True, help="the `select` configuration as JSON")
    p.add_argument("--converged-accuracy", type=float, required=True)
    p.add_argument("--dataset-summary", help="this iteration's dataset summary (DFT spent)")
    p.add_argument("--iteration", type=int, required=True)
    p.add_argument("--out", required=True, help="extxyz of the picked frames")
    p.add_argument("--report", required=True, help="JSON selection report")
    p.set_defaults(func=run_select)

    p = subparsers.add_parser("finalize", help="write the final committee and its model card")
    p.add_argument("--config", required=True, help="the validated configuration as JSON")
    p.add_argument("--species", nargs="+", required=True)
    p.add_argument("--campaign-dir", required=True)
    p.add_argument("--reports", nargs="+", required=True, help="selection reports, in order")
    p.add_argument("--members", nargs="+", required=True, help="final member folders")
    p.add_argument("--validation", help="the final committee's validation.json")
    p.add_argument("--protocol-check", help="the protocol check's JSON")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=run_finalize)

    p = subparsers.add_parser("status", help="print the iteration table of a campaign")
    p.add_argument("campaign_dir", help="results/<campaign>")
    p.set_defaults(func=run_status)


def run_select(args: argparse.Namespace) -> int:
    """Classify explored frames, pick candidates, decide convergence."""
    from potforge.select import convergence, select_frames

    trajectories = read_trajectories(args.trajectories)
    settings = json.loads(args.select)
    if args.exclude:
        from potforge.select import exclude_frames

        excluded = exclude_frames(
            trajectories, read_frames(args.exclude), args.iteration, settings["min_step_gap"]
        )
        print(f"[select] {excluded} explored frames excluded: test-set frames or next to one")
    picked, report = select_frames(
        trajectories,
        json.loads(args.trust),
        args.species,
        settings["max_frames_per_iteration"],
        settings["min_step_gap"],
        settings["min_descriptor_distance"],
        strategy=settings.get("strategy", "uncertainty"),
        seed=int(settings.get("seed", 0)) + args.iteration,
        max_volume_ratio=settings.get("max_volume_ratio"),
        max_frames_per_task=settings.get("max_frames_per_task"),
    )
    for atoms in picked:
        atoms.info["selected_in"] = args.iteration
    converged, why = convergence(report, args.converged_accuracy)
    dataset = read_json(args.dataset_summary) if args.dataset_summary else {}
    report.update(
        iteration=args.iteration,
        converged=converged,
        convergence=why,
        strategy=settings.get("strategy", "uncertainty"),
        dft_core_seconds_spent=float(dataset.get("dft_core_seconds") or 0.0),
        dataset_frames=int(dataset.get("frames") or 0),
    )
    write_frames(args.out, picked)
    write_json(args.report, report)
    for task, n in report["expanded"].items():
        print(
            f"[select] {task}: {n} frames swollen past {report['max_volume_ratio']:g} x the start "
            "volume per atom counted as failed, never picked (the model does not hold the cell "
            "together: lower the temperature or raise the pressure of that task)",
            flush=True,
        )
    c = report["counts"]
    print(
        f"[select] iteration {args.iteration}: {report['frames']} frames explored: "
        f"{c['accurate']} accurate, {c['candidate']} candidates, {c['failed']} failed; "
        f"{len(picked)} picked; {why}",
        flush=True,
    )
    return 0


def run_finalize(args: argparse.Namespace) -> int:
    """Copy the final committee and write the model card (JSON and Markdown)."""
    from potforge.loop import model_card, model_card_markdown, stop_point
    from potforge.record import campaign_record

    config = json.loads(args.config)
    reports = [read_json(p) for p in args.reports]
    point = stop_point(reports, config["loop"])
    if point is None:
        raise SystemExit("finalize: the loop has not stopped yet")
    final, why = point
    out = Path(args.out_dir)
    for k, member in enumerate(map(Path, args.members)):
        dest = out / "committee" / f"member_{k}"
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("model.nequip.zip", "best.ckpt", "metrics.json"):
            shutil.copy2(member / name, dest / name)
        for compiled in member.glob("model.*.nequip.pt2"):
            shutil.copy2(compiled, dest / compiled.name)
    card = model_card(config, args.species, final, why, args.campaign_dir)
    card["record"] = campaign_record(config, args.campaign_dir, final)
    if args.validation:
        from potforge.loop import validation_summary

        card["validation"] = validation_summary(read_json(args.validation))
        card["validation_file"] = "validation.json"
    if args.protocol_check:
        card["protocol_check"] = read_json(args.protocol_check)
    write_json(out / "model_card.json", card)
    (out / "model_card.md").write_text(model_card_markdown(card))
    print(f"[final] {out}: committee of {len(args.members)} from iteration {final}: {why}")
    print(f"[final] test-split force RMSE: {card['test_force_rmse']} eV/A", flush=True)
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print the iteration table."""
    from potforge.loop import status_table

    print(status_table(args.campaign_dir))
    return 0
