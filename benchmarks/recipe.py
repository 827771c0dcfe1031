"""Training recipes compared on one finished campaign's data, measured on what it did not choose.

Every arm trains a committee from scratch on the same dataset (a finished campaign's last
iteration: train and validation splits), then the validation stage measures it on the
campaign's independent test set and on the properties against the campaign's DFT references
(same protocol). The first arm is the config's own recipe (the baseline, run in the same
process); the others override keys of its `train:` section.

    python benchmarks/recipe.py --campaign results/si-quick \\
        --arm 'energy100={"loss": {"energy": 100}}' --arm 'epochs300={"epochs": 300}'

An arm may also add data: `"extra_deformations": N` appends N more random deformations of the
system's sample cell (the config's `sample.deformations` settings, seeds the campaign never
drew) and `"extra_molten": N` N more molten cells (`sample.molten`'s settings), labelled by GPAW
at the campaign's protocol, to the training split; the validation and test splits and the
independent test set stay the same; `"deformations": {"max_strain": 0.01, "rattle": 0.0}`
replaces those settings for the extra frames (e.g. clean strains). An arm
with `"warm": true` starts member K from the campaign's previous-iteration member K (its
package) and trains `warm_epochs`, as the loop does; every other arm trains from scratch for
`epochs`.

`--no-baseline` skips the config's own recipe when the campaign's own final committee (its
final/validation.json) serves as the reference. Writes benchmarks/results/recipe.json (or
--result FILE) after every arm, and prints a table: force and energy
RMSE on the independent frames, per origin, and the property rows (model error against DFT).

A member that finished before on the same inputs (train settings, data files, seed: a digest
in its `recipe_member.json`) is kept, so a stopped arm resumes, and `--members 1` after a
3-member run validates its first member alone; `train_and_package_s` adds the members' own
recorded seconds. With `--no-baseline --members N` below the committee size, the campaign's own
first N final members are validated too (`campaign_members_N`): a reference of the same size.
An arm's members and validation live in `--out`/<campaign folder>_<arm>.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULT = HERE / "results" / "recipe.json"


def merged(base: dict, override: dict) -> dict:
    """Return base with override's keys replaced recursively."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def potforge(*args: str, log: Path) -> None:
    """Run one potforge command, its output into `log`; raise with the log's tail on failure."""
    with open(log, "a") as fh:
        proc = subprocess.run(["potforge", *args], stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise SystemExit(f"potforge {args[0]} failed (exit {proc.returncode}); {log}:\n{tail}")


EXTRA_SEED = 424242  # seeds of the extra deformations: not the campaign's sampling stream


def extra_frames(config: dict, kind: str, count: int, override: dict) -> list:
    """Return `count` new unlabelled frames of one sample generator (deformation or molten)."""
    import numpy as np

    from potforge.sampling import deformed, molten_sample, tag_origin
    from potforge.structures import starting_structure

    frames = []
    rng = np.random.default_rng(EXTRA_SEED)
    for name, system in config["systems"].items():
        base = starting_structure(system["structure"])
        cell = base.repeat(system["sample"]["supercell"])
        settings = {**system["sample"]["deformations"], **override}
        for _ in range(count):
            seed = int(rng.integers(2**31))
            if kind == "molten":
                atoms = molten_sample(base, cell, system["sample"]["molten"], seed)
            else:
                atoms = deformed(cell, settings["max_strain"], settings["rattle"], seed)
            frames.append(tag_origin(atoms, name, kind, seed, extra=True))
    return frames


def with_extra_frames(
    config: dict,
    data: Path,
    extra: dict[str, int],
    store: Path,
    out: Path,
    override: dict | None = None,
) -> Path:
    """Return a copy of the dataset folder whose training split has more sample frames.

    `extra` maps a generator (deformation, molten) to how many more of it; `override` replaces
    the deformation settings (max_strain, rattle) for the extra deformations.
    """
    from potforge.dft.label import label_frames
    from potforge.io import read_frames, write_frames
    from potforge.sampling import SAMPLE_KEYS

    override = override or {}
    unknown = sorted(set(override) - {"max_strain", "rattle"})
    if unknown:
        raise SystemExit(f"arm key deformations: unknown {unknown}; it takes max_strain, rattle")
    suffix = "".join(f"_{k}{v}" for k, v in sorted(override.items()))
    # Keyed by the base training split too: every run of a campaign has the same folder name.
    base = hashlib.sha256((data / "train.extxyz").read_bytes()).hexdigest()[:12]
    # Named by the generators' sample keys: extra_deformations_12, as earlier records' caches.
    parts = [f"extra_{SAMPLE_KEYS.get(kind, kind)}_{n}" for kind, n in extra.items() if n]
    target = out / f"data_{base}_{'_'.join(parts)}{suffix}"
    if (target / "train.extxyz").is_file():
        return target
    frames = [f for kind, n in extra.items() if n for f in extra_frames(config, kind, n, override)]
    print(f"[recipe] labelling {len(frames)} extra frames ({extra})", flush=True)
    report = label_frames(frames, config["dft"], store, ranks=2, log=lambda _: None)
    target.mkdir(parents=True, exist_ok=True)
    for split in ("validation", "test"):
        write_frames(target / f"{split}.extxyz", read_frames(data / f"{split}.extxyz"))
    write_frames(target / "train.extxyz", read_frames(data / "train.extxyz") + report.labelled)
    return target


def arm_folder(out: Path, campaign: Path, name: str) -> Path:
    """Return the folder of one arm's members and validation (per campaign: the same arm name
    on Si and HfO2 data must not share members)."""
    return out / f"{campaign.name}_{name}"


def member_fingerprint(
    train: dict, species: list[str], data: Path, seed: int, member: int, warm: list[str]
) -> str:
    """Return a digest of everything a member's training reads (settings, data files, seed)."""
    digest = hashlib.sha256(json.dumps([train, species, seed, member, warm]).encode())
    for path in sorted(data.glob("*.extxyz")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def run_arm(
    name: str,
    train: dict,
    config: dict,
    campaign: Path,
    iteration: int,
    out: Path,
    threads: int,
    members_trained: int | None = None,
    extra: dict[str, int] | None = None,
    warm_from_previous: bool = False,
    deformation_settings: dict | None = None,
) -> dict:
    """Train one arm's committee from scratch, package it, validate it; return the record."""
    from potforge.config import model_species
    from potforge.io import read_frames

    species = model_species(config)
    arm_dir = arm_folder(out, campaign, name)
    arm_dir.mkdir(parents=True, exist_ok=True)
    log = arm_dir / "log.txt"
    data = campaign / f"iter_{iteration:03d}" / "dataset"
    extra = {kind: n for kind, n in (extra or {}).items() if n}
    if extra:
        data = with_extra_frames(
            config, data, extra, campaign / "dft_store", out, deformation_settings
        )
    check = campaign / "validation" / "protocol_check.json"
    members = []
    count = members_trained or int(train["committee"])
    member_seconds = []
    for k in range(count):
        member = arm_dir / f"member_{k}"
        warm: list[str] = []
        if warm_from_previous and iteration > 0:
            previous = campaign / f"iter_{iteration - 1:03d}" / "train" / f"member_{k}"
            warm = ["--init", str(previous / "model.nequip.zip")]
            warm += ["--epochs", str(train["warm_epochs"])]
        fingerprint = member_fingerprint(train, species, data, config["seed"], k, warm)
        done = member / "recipe_member.json"
        before = json.loads(done.read_text()) if done.exists() else {}
        if before.get("inputs") == fingerprint:
            print(f"[recipe] {name}: member {k} kept (trained on the same inputs before)")
            members.append(str(member / "model.nequip.zip"))
            member_seconds.append(before["seconds"])
            continue
        print(f"[recipe] {name}: member {k}", flush=True)
        member_start = time.perf_counter()
        potforge(
            "train-member",
            "--train-settings",
            json.dumps(train),
            "--species",
            *species,
            "--data-dir",
            str(data),
            "--member",
            str(k),
            "--seed",
            str(config["seed"]),
            "--threads",
            str(threads),
            "--out",
            str(member),
            "--protocol-check",
            str(check),
            *warm,
            log=log,
        )
        potforge(
            "deploy",
            "--member-dir",
            str(member),
            "--targets",
            "none",
            "--cache-dir",
            str(out / "model_cache"),
            "--threads",
            str(threads),
            "--report",
            str(member / "deploy.json"),
            log=log,
        )
        members.append(str(member / "model.nequip.zip"))
        member_seconds.append(round(time.perf_counter() - member_start, 1))
        done.write_text(json.dumps({"inputs": fingerprint, "seconds": member_seconds[-1]}))
    train_s = sum(member_seconds)
    record = {
        "train": train,
        "extra_deformations": extra.get("deformation", 0),
        "extra_molten": extra.get("molten", 0),
        "deformation_settings": deformation_settings or {},
        "warm": warm_from_previous,
        "train_frames": len(read_frames(data / "train.extxyz")),
        "train_and_package_s": round(train_s, 1),
        "best_epochs": [
            json.loads((arm_dir / f"member_{k}" / "metrics.json").read_text()).get("best_epoch")
            for k in range(count)
        ],
    }
    return record | validated(members, config, campaign, iteration, arm_dir)


def validated(
    members: list[str], config: dict, campaign: Path, iteration: int, arm_dir: Path
) -> dict:
    """Validate a committee of `members` as the campaign's final one was; return the figures."""
    from potforge.config import model_species

    arm_dir.mkdir(parents=True, exist_ok=True)
    validation = arm_dir / "validation.json"
    section = {k: config[k] for k in ("seed", "systems", "dft", "validate")}
    potforge(
        "validate",
        "--config",
        json.dumps(section),
        "--species",
        *model_species(config),
        "--members",
        *members,
        "--test-labels",
        *map(str, sorted((campaign / "validation" / "labels").glob("chunk_*[0-9].extxyz"))),
        "--references",
        *map(str, sorted((campaign / "validation").glob("dft_*.json"))),
        "--iteration",
        str(iteration),
        "--protocol-check",
        str(campaign / "validation" / "protocol_check.json"),
        "--out",
        str(validation),
        log=arm_dir / "log.txt",
    )
    result = json.loads(validation.read_text())
    ts = result["test_set"]
    return {
        "independent_force_rmse": ts.get("force_rmse_ev_per_a"),
        "independent_energy_rmse_mev": ts.get("energy_rmse_mev_per_atom"),
        "per_species_force_rmse": ts.get("per_species_force_rmse_ev_per_a", {}),
        "per_origin_force_rmse": {
            o: round(v["force_rmse_ev_per_a"], 4) for o, v in ts.get("per_origin", {}).items()
        },
        "properties": {
            f"{r['system']}:{r['name']}": {
                "error": None if r.get("error") is None else round(float(r["error"]), 4),
                "pass": r["pass"],
            }
            for r in result["properties"]
            if not isinstance(r.get("error"), str)
        },
        "properties_passed": result["property_summary"]["passed"],
    }


DATA_KEYS = ("extra_deformations", "extra_molten", "warm", "deformations")


def arm_train_settings(base: dict, name: str, override: dict) -> dict:
    """Return an arm's `train:` settings; stop with one line naming the arm if they are invalid."""
    from potforge.errors import ConfigError
    from potforge.train.settings import resolve_train_settings

    train = merged(base, {k: v for k, v in override.items() if k not in DATA_KEYS})
    try:
        resolve_train_settings(train)
    except ConfigError as exc:
        raise SystemExit(f"arm {name}: {exc} (or a data key: {', '.join(DATA_KEYS)})") from None
    return train


def main() -> None:
    """Run every arm and write the comparison."""
    from potforge.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", type=Path, required=True, help="results/<campaign>")
    parser.add_argument("--config", default="config/config.yaml", help="that campaign's config")
    parser.add_argument("--iteration", type=int, help="dataset of this iteration (default: last)")
    parser.add_argument(
        "--arm", action="append", default=[], help="NAME=JSON overrides of train: (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=HERE / ".cache" / "recipe")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--result", type=Path, default=RESULT, help="the JSON written")
    parser.add_argument(
        "--members", type=int, help="members trained per arm (default: the config's committee)"
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the config's own recipe (compare against the campaign's own committee)",
    )
    args = parser.parse_args()
    config = load_config(args.config)
    campaign = args.campaign.resolve()
    iterations = sorted(campaign.glob("iter_*/dataset/train.extxyz"))
    if not iterations:
        raise SystemExit(f"{campaign}: no iter_*/dataset/train.extxyz; is it a finished campaign?")
    iteration = args.iteration
    if iteration is None:
        iteration = int(iterations[-1].parents[1].name.removeprefix("iter_"))
    arms = {} if args.no_baseline else {"baseline": {}}
    for spec in args.arm:
        name, _, text = spec.partition("=")
        try:
            arms[name] = json.loads(text)
        except json.JSONDecodeError as exc:
            parser.error(
                f"--arm {name}: not valid JSON ({exc}); e.g. 'epochs600={{\"epochs\": 600}}'"
            )
        if not isinstance(arms[name], dict):
            parser.error(f"--arm {name}: needs a JSON object of overrides, got {text!r}")
    if not arms:
        parser.error("--no-baseline needs at least one --arm")
    trains = {name: arm_train_settings(config["train"], name, o) for name, o in arms.items()}
    records = {}
    own = sorted(campaign.glob("final/committee/member_*/model.nequip.zip"))
    if args.no_baseline and args.members and args.members < len(own):
        # A same-size reference: the campaign's own first members, validated the same way.
        name = f"campaign_members_{args.members}"
        members = [str(m) for m in own[: args.members]]
        print(f"[recipe] {name}: the campaign's {', '.join(members)}", flush=True)
        records[name] = {"train": config["train"], "train_and_package_s": None}
        folder = arm_folder(args.out, campaign, name)
        records[name] |= validated(members, config, campaign, iteration, folder)
        write_result(args, campaign, iteration, records)
    for name, override in arms.items():
        extra = {
            "deformation": int(override.get("extra_deformations", 0)),
            "molten": int(override.get("extra_molten", 0)),
        }
        warm = bool(override.get("warm", False))
        train = trains[name]
        records[name] = run_arm(
            name,
            train,
            config,
            campaign,
            iteration,
            args.out,
            args.threads,
            args.members,
            extra,
            warm,
            override.get("deformations"),
        )
        records[name]["override"] = override
        write_result(args, campaign, iteration, records)  # nothing lost if a later arm fails
    print_table(records)
    print(f"written: {args.result}")


def print_table(records: dict[str, dict]) -> None:
    """Print the arms' errors, properties and per-origin force RMSE, one row per arm."""
    keys = sorted({k for r in records.values() for k in r["properties"]})
    origins = sorted({k for r in records.values() for k in r["per_origin_force_rmse"]})
    width = max(len(name) for name in records) + 2
    print(f"{'arm':<{width}}{'F eV/A':>9}{'E meV':>8}{'passed':>8}{'s':>7}  " + "  ".join(keys))
    for name, r in records.items():
        errors = "  ".join(
            f"{r['properties'].get(k, {}).get('error', float('nan')):>{len(k)}.3g}" for k in keys
        )
        seconds = r["train_and_package_s"] or float("nan")
        print(
            f"{name:<{width}}{r['independent_force_rmse']:>9.3f}"
            f"{r['independent_energy_rmse_mev']:>8.1f}{r['properties_passed']:>8}{seconds:>7.0f}"
            f"  {errors}"
        )
    print("per origin (force RMSE eV/A): " + ", ".join(origins))
    for name, r in records.items():
        rmse = r["per_origin_force_rmse"]
        print(f"{name:<{width}}" + " ".join(f"{rmse.get(o, 0):.3f}" for o in origins))


def write_result(
    args: argparse.Namespace, campaign: Path, iteration: int, records: dict[str, dict]
) -> None:
    """Write the arms finished so far to --result."""
    out = {
        "campaign": str(campaign.relative_to(ROOT))
        if campaign.is_relative_to(ROOT)
        else str(campaign),
        "iteration": iteration,
        "config": args.config,
        "note": "every arm trained from scratch on the same dataset; errors on the campaign's "
        "independent test set and properties against its DFT references (same protocol)",
        "arms": records,
    }
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
