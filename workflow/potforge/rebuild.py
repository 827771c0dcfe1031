"""Rebuild a finished campaign's committees from its record and measure how far they land.

The record (model card, `record`) names each iteration's dataset by content hash and each
member's seed, warm start, epochs and threads. The rebuild trains the chain again (iteration 0
from scratch, each later member from its rebuilt predecessor's package) on the recorded
datasets and compares: weights tensor by tensor (bitwise on the same machine and software),
and the final committees' forces on the campaign's independent test set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from potforge.errors import ConfigError, DatasetError
from potforge.io import read_json, write_json
from potforge.record import dataset_hashes

REPORT_NAME = "rebuild.json"


def weight_difference(checkpoint: str | Path, reference: str | Path) -> dict[str, Any]:
    """Compare the weights of two checkpoints: bitwise equal, and the largest difference."""
    import torch

    def state(path: str | Path) -> dict[str, Any]:
        weights = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        return {k: v for k, v in weights.items() if torch.is_tensor(v)}  # not loss bookkeeping

    a, b = state(checkpoint), state(reference)
    if set(a) != set(b):
        return {"bitwise_equal": False, "max_abs_diff": None, "tensors": len(a), "why": "keys"}
    worst, equal = 0.0, True
    for key, tensor in a.items():
        other = b[key]
        if tensor.shape != other.shape or tensor.dtype != other.dtype:
            return {"bitwise_equal": False, "max_abs_diff": None, "tensors": len(a), "why": key}
        if not torch.equal(tensor, other):
            equal = False
            if tensor.is_floating_point():
                worst = max(worst, float((tensor - other).abs().max()))
    return {"bitwise_equal": equal, "max_abs_diff": worst, "tensors": len(a)}


def committee_force_difference(
    packages: Sequence[Path], reference: Sequence[Path], frames: Sequence[Any]
) -> float | None:
    """Return the largest |F_rebuilt - F_recorded| (eV/A) of the committee means on frames."""
    from potforge.train.committee import load_committee, score_frames

    if not frames:
        return None
    ours = score_frames(load_committee(packages), frames).mean_forces()
    theirs = score_frames(load_committee(reference), frames).mean_forces()
    return float(max(np.abs(f - g).max() for f, g in zip(ours, theirs, strict=True)))


def rebuild_campaign(
    campaign_dir: str | Path,
    out_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Retrain every recorded member into out_dir and report the distance to the recorded ones."""
    from potforge.compare import shared_test_set
    from potforge.train.member import BEST_CHECKPOINT, train_member
    from potforge.train.nequip_config import SplitFiles
    from potforge.train.settings import member_seed, settings_as_trained

    campaign_dir = Path(campaign_dir).resolve()
    card_path = campaign_dir / "final" / "model_card.json"
    if not card_path.is_file():
        raise ConfigError(f"{card_path}: no model card; rebuild needs a finished campaign")
    card = read_json(card_path)
    record = card.get("record")
    if not record:
        raise ConfigError(f"{card_path}: the card has no record (made before potforge recorded)")
    out = Path(out_dir).resolve() if out_dir else campaign_dir / "rebuild"
    settings = settings_as_trained(record["config"]["train"], card.get("protocol_check"))
    seed = int(record["config"]["seed"])
    species = list(card["species"])
    rows = []
    for entry in record["iterations"]:
        it_name = f"iter_{entry['iteration']:03d}"
        dataset = campaign_dir / it_name / "dataset"
        if dataset_hashes(dataset) != entry["dataset_sha256"]:
            raise DatasetError(
                f"{dataset}: the split files differ from the recorded ones (hash); the campaign "
                "was changed after it finished, so it cannot be rebuilt as recorded"
            )
        for member in entry["members"]:
            k = int(member["member"])
            if member_seed(seed, k) != member["seed"]:
                raise ConfigError(f"{it_name} member {k}: recorded seed {member['seed']} differs")
            dest = out / it_name / "train" / f"member_{k}"
            init = out / member["init"] if member["init"] else None
            log(f"[rebuild] {it_name} member {k}: {member['max_epochs']} epochs, init {init}")
            train_member(
                settings,
                species,
                SplitFiles.in_dir(dataset),
                dest,
                k,
                seed,
                init=init,
                threads=int(member["threads"]),
                epochs=int(member["max_epochs"]),
                cache_dir=out / "model_cache",
            )
            recorded = campaign_dir / it_name / "train" / f"member_{k}" / BEST_CHECKPOINT
            diff = weight_difference(dest / BEST_CHECKPOINT, recorded)
            log(f"[rebuild] {it_name} member {k}: {diff}")
            rows.append({"iteration": entry["iteration"], "member": k, **diff})
    final = record["iterations"][-1]
    final_name = f"iter_{final['iteration']:03d}"
    ks = [int(m["member"]) for m in final["members"]]
    rebuilt = [out / final_name / "train" / f"member_{k}" / "model.nequip.zip" for k in ks]
    recorded_packages = [
        campaign_dir / final_name / "train" / f"member_{k}" / "model.nequip.zip" for k in ks
    ]
    frames = shared_test_set([campaign_dir])
    report = {
        "campaign_dir": str(campaign_dir),
        "out_dir": str(out),
        "members": rows,
        "bitwise_equal": all(r["bitwise_equal"] for r in rows),
        "max_weight_diff": max((r["max_abs_diff"] or 0.0) for r in rows) if rows else None,
        "independent_frames": len(frames),
        "max_force_diff_ev_per_a": committee_force_difference(rebuilt, recorded_packages, frames),
        "recorded_machine": record.get("machine"),
    }
    write_json(out / REPORT_NAME, report)
    log(
        f"[rebuild] {len(rows)} members: bitwise equal {report['bitwise_equal']}, largest weight "
        f"difference {report['max_weight_diff']}, largest force difference of the final "
        f"committee on {len(frames)} independent frames {report['max_force_diff_ev_per_a']} eV/A"
    )
    return report
