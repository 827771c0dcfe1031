"""Collect what a campaign folder holds for the report; every piece is optional."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ITER_GLOB = "iter_[0-9][0-9][0-9]"
DEFAULT_TRUST = {"lo": 0.05, "hi": 0.15}


@dataclass
class Benchmark:
    """One Snakemake benchmark file: which stage and iteration, wall and CPU seconds."""

    path: str
    stage: str
    iteration: int | None
    wall_s: float
    cpu_s: float | None
    end: float


@dataclass
class Iteration:
    """What one iteration folder holds (each piece None or empty when not written yet)."""

    index: int
    dataset: dict[str, Any] | None = None
    committee: dict[str, Any] | None = None
    select: dict[str, Any] | None = None
    labels: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, Any] | None = None
    explorations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Campaign:
    """Everything the report reads from results/<campaign>/."""

    root: Path
    name: str
    iterations: list[Iteration] = field(default_factory=list)
    validation: dict[str, Any] | None = None
    model_card: dict[str, Any] | None = None
    protocol_check: dict[str, Any] | None = None
    test_labels: list[dict[str, Any]] = field(default_factory=list)
    benchmarks: list[Benchmark] = field(default_factory=list)
    model_files: list[tuple[str, int]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def read_json(path: Path, problems: list[str]) -> Any:
    """Return a JSON file's content, None when it is absent; note an unreadable one."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name}: {exc}")
        return None


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def benchmark_stage(rel: Path) -> tuple[str, int | None]:
    """Return (stage, iteration) a benchmark path below logs/ stands for."""
    parts = rel.parts
    stem = rel.name.removesuffix(".benchmark.tsv")
    if parts[0] == "validation":
        if len(parts) > 2 and parts[1] == "labels":
            return "test-set labels", None
        if stem == "protocol_check":
            return "protocol check", None
        if stem.startswith("dft_"):
            return "DFT reference", None
        return "final validation" if stem == "final" else stem.replace("_", " "), None
    iteration = int(parts[0][5:]) if parts[0].startswith("iter_") else None
    if iteration is None or len(parts) < 2:
        return stem.replace("_", " "), iteration
    if parts[1] == "labels":
        return "label", iteration
    if parts[1] == "train":
        return ("deploy" if stem.startswith("deploy") else "train"), iteration
    return parts[1].removesuffix(".benchmark.tsv").replace("_", " "), iteration


def read_benchmark(path: Path, logs: Path) -> Benchmark | None:
    """Parse one benchmark TSV (header and one row); None when it has no usable row."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        end = path.stat().st_mtime
    except (OSError, csv.Error):
        return None
    if not rows or _number(rows[0].get("s")) is None:
        return None
    rel = path.relative_to(logs)
    stage, iteration = benchmark_stage(rel)
    return Benchmark(
        path=rel.as_posix(),
        stage=stage,
        iteration=iteration,
        wall_s=float(_number(rows[0]["s"]) or 0.0),
        cpu_s=_number(rows[0].get("cpu_time")),
        end=end,
    )


def read_benchmarks(root: Path) -> list[Benchmark]:
    """Every benchmark file under <campaign>/logs, in path order."""
    logs = root / "logs"
    found = (read_benchmark(p, logs) for p in sorted(logs.rglob("*.benchmark.tsv")))
    return [b for b in found if b is not None]


def read_explorations(it_dir: Path, problems: list[str]) -> list[dict[str, Any]]:
    """The exploration summaries of one iteration, each tagged with its system and task."""
    out = []
    for path in sorted((it_dir / "explore").glob("*/*/summary.json")):
        summary = read_json(path, problems)
        if isinstance(summary, dict):
            out.append(
                {**summary, "system": path.parent.parent.name, "task_name": path.parent.name}
            )
    return out


def read_iteration(it_dir: Path, problems: list[str]) -> Iteration:
    """Collect one iteration folder."""
    labels = [read_json(p, problems) for p in sorted((it_dir / "labels").glob("chunk_*.json"))]
    return Iteration(
        index=int(it_dir.name[5:]),
        dataset=read_json(it_dir / "dataset" / "summary.json", problems),
        committee=read_json(it_dir / "train" / "committee.json", problems),
        select=read_json(it_dir / "select" / "report.json", problems),
        labels=[r for r in labels if isinstance(r, dict)],
        validation=read_json(it_dir / "validate" / "validation.json", problems),
        explorations=read_explorations(it_dir, problems),
    )


def model_files(root: Path) -> list[tuple[str, int]]:
    """The final committee's files (relative path, bytes)."""
    committee = root / "final" / "committee"
    files = sorted(p for p in committee.glob("member_*/*") if p.is_file())
    return [(p.relative_to(root).as_posix(), p.stat().st_size) for p in files]


def load_campaign(campaign_dir: str | Path) -> Campaign:
    """Read everything the report can use from a campaign folder."""
    root = Path(campaign_dir)
    problems: list[str] = []
    labels = sorted((root / "validation" / "labels").glob("chunk_*.json"))
    campaign = Campaign(
        root=root,
        name=root.resolve().name,
        iterations=[
            read_iteration(d, problems) for d in sorted(root.glob(ITER_GLOB)) if d.is_dir()
        ],
        validation=read_json(root / "final" / "validation.json", problems),
        model_card=read_json(root / "final" / "model_card.json", problems),
        protocol_check=read_json(root / "validation" / "protocol_check.json", problems),
        test_labels=[r for r in (read_json(p, problems) for p in labels) if isinstance(r, dict)],
        benchmarks=read_benchmarks(root),
        model_files=model_files(root),
    )
    campaign.unreadable = problems
    if campaign.model_card and campaign.model_card.get("campaign"):
        campaign.name = str(campaign.model_card["campaign"])
    return campaign


def get(data: Any, dotted: str, default: Any = None) -> Any:
    """Look up 'a.b.c' in nested dicts; the default where any level is missing."""
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return default if data is None else data


def best_validation(campaign: Campaign) -> tuple[dict[str, Any] | None, str]:
    """The final validation, else the latest iteration's; with a label saying which."""
    if campaign.validation:
        it = campaign.validation.get("iteration")
        return campaign.validation, "final committee" + ("" if it is None else f" (iteration {it})")
    for it in reversed(campaign.iterations):
        if it.validation:
            return it.validation, f"iteration {it.index} committee (no final validation yet)"
    return None, ""


def trust_window(campaign: Campaign) -> tuple[dict[str, float | None], str]:
    """The configured trust window {lo, hi} (either may be unknown) and where it came from."""
    sources = [("final validation", campaign.validation)]
    sources += [(f"iteration {it.index} validation", it.validation) for it in campaign.iterations]
    for name, validation in sources:
        trust = get(validation, "calibration.configured_trust")
        if isinstance(trust, dict) and {"lo", "hi"} <= trust.keys():
            return {"lo": float(trust["lo"]), "hi": float(trust["hi"])}, name
    highs = {
        r["trust_hi"] for it in campaign.iterations for r in it.explorations if r.get("trust_hi")
    }
    if len(highs) == 1:
        why = "hi from the exploration summaries; lo unknown until a validation records it"
        return {"lo": None, "hi": float(highs.pop())}, why
    return dict(DEFAULT_TRUST), "default: no validation recorded the configured window"


def dft_frames(it: Iteration) -> int | None:
    """Frames sent to DFT up to an iteration (dataset frames plus quarantined ones)."""
    if not it.dataset or it.dataset.get("frames") is None:
        return None
    return int(it.dataset["frames"]) + int(it.dataset.get("quarantined") or 0)


def core_hours(it: Iteration) -> float | None:
    """DFT core-hours of the dataset up to an iteration."""
    seconds = get(it.dataset, "dft_core_seconds")
    return None if seconds is None else float(seconds) / 3600.0


def stop_reason(campaign: Campaign) -> str:
    """Why the loop stopped, or where it stands when it has not."""
    reason = get(campaign.model_card, "stop_reason")
    if reason:
        return str(reason)
    for it in reversed(campaign.iterations):
        if it.select:
            state = "converged" if it.select.get("converged") else "still running"
            why = it.select.get("convergence") or "no reason recorded"
            return f"not finalised yet ({state}); iteration {it.index}: {why}"
    if campaign.iterations:
        return f"not finalised yet: iteration {campaign.iterations[-1].index} has no selection"
    return "no iteration has started"


def missing_pieces(campaign: Campaign) -> list[str]:
    """Human-readable list of what the campaign folder does not have (yet)."""
    out = []
    if not campaign.iterations:
        out.append("no iter_NNN folder")
    for it in campaign.iterations:
        name = f"iter_{it.index:03d}"
        for label, present in (
            ("dataset/summary.json", it.dataset),
            ("train/committee.json", it.committee),
            ("select/report.json", it.select),
        ):
            if not present:
                out.append(f"{name}/{label}")
    for label, present in (
        ("final/validation.json", campaign.validation),
        ("final/model_card.json", campaign.model_card),
        ("validation/protocol_check.json", campaign.protocol_check),
        ("final/committee/member_*", campaign.model_files),
        ("logs/**/*.benchmark.tsv", campaign.benchmarks),
    ):
        if not present:
            out.append(label)
    return out + [f"unreadable: {p}" for p in campaign.unreadable]
