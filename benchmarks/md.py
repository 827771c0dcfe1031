"""MD throughput of one NequIP model through four routes, and the cost of the committee deviation.

    python benchmarks/md.py --pair-model M.pair.nequip.pt2 --ase-model M.ase.nequip.pt2 \
        [--threads 2] [--out benchmarks/results/md.json]

Routes, each on 64, 512 and 4096 diamond-Si atoms, in this one process:
  pairstyle     LAMMPS + pair_style potforge (the C++ plugin), NVE
  fix_external  LAMMPS + fix external whose Python callback runs the compiled model
  ase           ASE VelocityVerlet with the NequIP ASE calculator (matscipy neighbour list)
  forward       the compiled model's forward pass alone on a fixed neighbour list (upper bound)
Every rate is the best of three timed repeats after a warm-up. The committee cost is measured
with the plugin on 512 atoms: K=4 models evaluated every 10 steps versus one model, reported as
the fraction of step time spent on the extra evaluations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk

SIZES = {64: 2, 512: 4, 4096: 8}  # atoms -> cubic repetitions of the 8-atom cell
STEPS = {64: 100, 512: 30, 4096: 5}  # timed steps per size and repeat (best of 3 repeats)


def si_cell(natoms: int):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(SIZES[natoms])
    atoms.rattle(0.02, seed=1)
    return atoms


def lammps_instance(plugin: Path, atoms, tmp: Path):
    from ase.io import write
    from lammps import lammps

    data = tmp / f"si{len(atoms)}.data"
    write(data, atoms, format="lammps-data", specorder=["Si"], units="metal")
    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    lmp.commands_string(
        f"""plugin load {plugin}
units metal
atom_style atomic
newton on
read_data {data}
mass 1 28.0855
velocity all create 300 4928 dist gaussian mom yes rot no
timestep 0.001
thermo 1000"""
    )
    return lmp


def best_of(run, repeats: int = 3) -> float:
    """Fastest wall time of `repeats` calls: the least disturbed by other jobs on the machine."""
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        walls.append(time.perf_counter() - start)
    return min(walls)


def timed_run(lmp, steps: int) -> float:
    lmp.command("run 3")  # setup, neighbour lists and first evaluations out of the timing
    return best_of(lambda: lmp.command(f"run {steps} pre no post no"))


def bench_pairstyle(plugin, model, natoms, steps, tmp, models=None, every=0):
    lmp = lammps_instance(plugin, si_cell(natoms), tmp)
    files = " ".join(str(m) for m in (models or [model]))
    lmp.commands_string(
        f"pair_style potforge every {every}\npair_coeff * * {files} Si\nfix md all nve"
    )
    wall = timed_run(lmp, steps)
    lmp.close()
    return natoms * steps / wall


def model_inputs(atoms, r_max: float):
    """The pair_nequip input list of a frame (pos, edge_index, atom_types, cell, shifts)."""
    from matscipy.neighbours import neighbour_list

    i, j, shift = neighbour_list("ijS", atoms, r_max)
    return [
        torch.tensor(atoms.positions, dtype=torch.float64),
        torch.tensor(np.stack([i, j]), dtype=torch.int64),
        torch.zeros(len(atoms), dtype=torch.int64),
        torch.tensor(atoms.cell.array, dtype=torch.float64).unsqueeze(0),
        torch.tensor(shift, dtype=torch.float64),
    ]


def bench_fix_external(plugin, model, natoms, steps, tmp):
    from ase import Atoms

    runner = torch._inductor.aoti_load_package(str(model))
    r_max = float(runner.get_metadata()["r_max"])
    lmp = lammps_instance(plugin, si_cell(natoms), tmp)
    lmp.commands_string("fix ext all external pf/callback 1 1\nfix md all nve")
    box = lmp.extract_box()
    lo, hi = np.array(box[0]), np.array(box[1])
    xy, yz, xz = box[2], box[3], box[4]
    cell = np.array([[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]])

    def callback(_, step, nlocal, tag, x, f):
        atoms = Atoms(["Si"] * nlocal, positions=np.asarray(x), cell=cell, pbc=True)
        with torch.inference_mode():
            energy_atom, forces, _virial = runner(model_inputs(atoms, r_max))
        f[:] = forces.numpy()
        lmp.fix_external_set_energy_global("ext", float(energy_atom.sum()))

    lmp.set_fix_external_callback("ext", callback, None)
    wall = timed_run(lmp, steps)
    lmp.close()
    return natoms * steps / wall


def bench_ase(model, natoms, steps):
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet
    from nequip.integrations.ase import NequIPCalculator

    atoms = si_cell(natoms)
    atoms.calc = NequIPCalculator.from_compiled_model(str(model), device="cpu")
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(1))
    dyn = VelocityVerlet(atoms, 1.0 * units.fs)
    dyn.run(3)
    return natoms * steps / best_of(lambda: dyn.run(steps))


def bench_forward(model, natoms, steps):
    runner = torch._inductor.aoti_load_package(str(model))
    inputs = model_inputs(si_cell(natoms), float(runner.get_metadata()["r_max"]))

    def loop():
        for _ in range(steps):
            runner(inputs)

    with torch.inference_mode():
        for _ in range(3):
            runner(inputs)
        return natoms * steps / best_of(loop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair-model", required=True, type=Path)
    parser.add_argument("--ase-model", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--notes", default="", help="free text stored in the result")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/md.json")
    args = parser.parse_args()

    from potforge.md.plugin import build_plugin

    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by the plugin at init
    torch.set_num_threads(args.threads)
    plugin = build_plugin()
    rates: dict[str, dict[str, float]] = {r: {} for r in ("pairstyle", "fix_external", "ase")}
    rates["forward"] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for natoms in SIZES:
            steps = STEPS[natoms]
            key = str(natoms)
            rates["pairstyle"][key] = bench_pairstyle(plugin, args.pair_model, natoms, steps, tmp)
            torch.set_num_threads(args.threads)  # a LAMMPS instance resets torch's threads
            rates["fix_external"][key] = bench_fix_external(
                plugin, args.pair_model, natoms, steps, tmp
            )
            torch.set_num_threads(args.threads)
            rates["ase"][key] = bench_ase(args.ase_model, natoms, steps)
            rates["forward"][key] = bench_forward(args.pair_model, natoms, steps)
            print(natoms, {r: round(v[key]) for r, v in rates.items()}, flush=True)

        # committee: K=4 members (the same file loaded four times costs the same) every 10 steps
        single = bench_pairstyle(plugin, args.pair_model, 512, 40, tmp)
        committee = bench_pairstyle(
            plugin, args.pair_model, 512, 40, tmp, models=[args.pair_model] * 4, every=10
        )
        torch.set_num_threads(args.threads)

    result = {
        "description": __doc__.splitlines()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor()}",
        "torch": torch.__version__,
        "threads": args.threads,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "notes": args.notes,
        "model": {"pair": args.pair_model.name, "ase": args.ase_model.name},
        "units": "atom-steps per second",
        "atom_steps_per_s": {r: {k: round(v, 1) for k, v in d.items()} for r, d in rates.items()},
        "pairstyle_vs_ase_512": round(rates["pairstyle"]["512"] / rates["ase"]["512"], 3),
        "pairstyle_vs_forward_512": round(rates["pairstyle"]["512"] / rates["forward"]["512"], 3),
        "committee": {
            "natoms": 512,
            "K": 4,
            "every": 10,
            "single_atom_steps_per_s": round(single, 1),
            "committee_atom_steps_per_s": round(committee, 1),
            "deviation_cost_fraction": round(1.0 - committee / single, 3),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
