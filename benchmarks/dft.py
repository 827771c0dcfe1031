"""DFT labelling cost with the default protocols, and parallel speed-ups.

Prints a table and writes benchmarks/results/dft.json. Every frame is a real GPAW single point
run the way the workflow runs it (potforge.dft.label_frames: one worker process per frame), so
the figures include process start-up. Run on an otherwise idle machine:

    python benchmarks/dft.py            # about 15 minutes on 2 cores
    python benchmarks/dft.py --only symmetry   # the k-point symmetry comparison alone (1 min),
                                               # merged into the existing dft.json
    python benchmarks/dft.py --only hfo2       # HfO2 12 atoms, quick vs cluster protocol (5 min)
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from potforge.config import load_config
from potforge.dft.label import label_frames
from potforge.structures import diamond, hfo2_monoclinic

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "dft.json"


def rattled(atoms, seed, amplitude=0.05):
    atoms = atoms.copy()
    atoms.rattle(amplitude, seed=seed)
    return atoms


def seconds(frames, dft, ranks=1):
    """Wall time of labelling `frames` one after the other in a fresh store."""
    with tempfile.TemporaryDirectory() as store:
        start = time.perf_counter()
        report = label_frames(frames, dft, store, ranks=ranks, log=lambda _: None)
        wall = time.perf_counter() - start
    assert len(report.labelled) == len(frames), report.summary()
    return wall, report.labelled


def symmetry_comparison(si_dft: dict) -> dict[str, float | str]:
    """Time-reversal symmetry against none, on the same rattled Si8 frames, in this process."""
    import numpy as np

    frames = [rattled(diamond(), 11), rattled(diamond(), 12)]
    t_off, off = seconds(frames, {**si_dft, "symmetry": "off"})
    t_tr, tr = seconds(frames, {**si_dft, "symmetry": "time-reversal"})
    return {
        "time_reversal_s_per_frame": t_tr / len(frames),
        "no_symmetry_s_per_frame": t_off / len(frames),
        "time_reversal_speedup": t_off / t_tr,
        "time_reversal_max_force_diff_ev_per_a": float(
            max(np.abs(a.get_forces() - b.get_forces()).max() for a, b in zip(off, tr, strict=True))
        ),
        "time_reversal_max_energy_diff_ev": float(
            max(
                abs(a.get_potential_energy() - b.get_potential_energy())
                for a, b in zip(off, tr, strict=True)
            )
        ),
        "time_reversal_frames": "2 rattled (0.05 A) Si8 cells at the default protocol",
    }


def hfo2_protocols() -> dict[str, float | str]:
    """One rattled 12-atom monoclinic HfO2 cell at the quick and the cluster protocol, 2 ranks."""
    frame = rattled(hfo2_monoclinic(), 3)
    out: dict[str, float | str] = {}
    for name in ("hfo2-quick", "hfo2"):
        dft = load_config(REPO / "config" / f"{name}.yaml")["dft"]
        wall, labelled = seconds([frame], dft, ranks=2)
        key = "cluster" if name == "hfo2" else "quick"
        out[f"hfo2_12_{key}_protocol_s_per_frame_2ranks"] = wall
        out[f"hfo2_12_{key}_protocol_scf_iterations"] = int(labelled[0].info["scf_iterations"])
        out[f"hfo2_12_{key}_protocol"] = (
            f"PBE, PW {dft['ecut']:g} eV, k-density {dft['kpt_density']:g}/A, "
            f"symmetry {dft['symmetry']} (config/{name}.yaml)"
        )
    quick = out["hfo2_12_quick_protocol_s_per_frame_2ranks"]
    out["hfo2_12_cluster_over_quick"] = out["hfo2_12_cluster_protocol_s_per_frame_2ranks"] / quick
    out["hfo2_protocols_frame"] = "rattled (0.05 A) monoclinic Hf4O8, 2 MPI ranks, one process"
    return out


def report(results: dict) -> None:
    """Print the table and write dft.json."""
    rows = [(k, v) for k, v in results.items()]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        text = f"{value:.3g}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {text}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"wrote {OUT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=["symmetry", "hfo2"], help="run one comparison, merge the JSON"
    )
    args = parser.parse_args()
    si_dft = load_config(REPO / "config" / "config.yaml")["dft"]
    if args.only:
        results = json.loads(OUT.read_text()) if OUT.is_file() else {}
        results.update(symmetry_comparison(si_dft) if args.only == "symmetry" else hfo2_protocols())
        report(results)
        return
    hfo2_dft = load_config(REPO / "config" / "hfo2.yaml")["dft"]
    si8, si64 = diamond(), diamond().repeat(2)
    results: dict[str, float | str] = {}

    t, lab = seconds([rattled(si8, 1)], si_dft)
    results["si8_s_per_frame"] = t
    results["si8_scf_iterations"] = int(lab[0].info["scf_iterations"])
    t1, lab = seconds([rattled(si64, 2)], si_dft)
    results["si64_s_per_frame"] = t1
    t2, lab2 = seconds([rattled(si64, 2)], si_dft, ranks=2)
    results["si64_s_per_frame_2ranks"] = t2
    results["mpi_speedup_2ranks"] = t1 / t2
    results["si64_mpi_energy_difference_eV"] = float(
        abs(lab[0].get_potential_energy() - lab2[0].get_potential_energy())
    )
    t, _ = seconds([rattled(hfo2_monoclinic(), 3)], hfo2_dft)
    results["hfo2_12_s_per_frame"] = t

    pair = [rattled(si8, 4), rattled(si8, 5)]
    serial, _ = seconds(pair, si_dft)
    with ThreadPoolExecutor(2) as pool:
        start = time.perf_counter()
        list(pool.map(lambda a: seconds([a], si_dft), pair))
        concurrent = time.perf_counter() - start
    results["si8_two_frames_serial_s"] = serial
    results["si8_two_frames_concurrent_s"] = concurrent
    results["parallel_speedup_2jobs"] = serial / concurrent

    results.update(symmetry_comparison(si_dft))
    results["protocol_si"] = "PBE, PW 300 eV, k-density 2.5/A Gamma-centred, FD 0.1 eV"
    results["protocol_hfo2"] = "PBE, PW 500 eV, k-density 2.5/A Gamma-centred, FD 0.1 eV"
    results["machine"] = f"{platform.node()} {platform.processor() or platform.machine()}"
    report(results)


if __name__ == "__main__":
    main()
