"""One GPAW single point in its own process (MPI-parallel under a launcher).

Exit status: 0 labelled, 3 SCF not converged, anything else a crash. The result is written
atomically by rank 0, so a killed worker leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

EXIT_UNCONVERGED = 3


def main(argv: list[str] | None = None) -> int:
    """Run the single point described by the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m potforge.dft.worker")
    parser.add_argument("--frame", required=True, help="extxyz file with one structure")
    parser.add_argument("--params", required=True, help="JSON file with GPAW parameters")
    parser.add_argument("--out", required=True, help="extxyz file for the labelled structure")
    args = parser.parse_args(argv)

    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import read
    from gpaw import GPAW, ConvergenceError
    from gpaw import __version__ as gpaw_version
    from gpaw.mpi import world

    from potforge.dft.protocol import reproducible_fft
    from potforge.io import write_frames

    reproducible_fft()
    atoms = read(args.frame, format="extxyz")
    with open(args.params) as fh:
        params = json.load(fh)
    start = time.perf_counter()
    atoms.calc = GPAW(txt="-" if world.rank == 0 else None, **params)
    try:
        energy = atoms.get_potential_energy(force_consistent=True)
        forces = atoms.get_forces()
        stress = atoms.get_stress(voigt=True)
    except ConvergenceError:
        if world.rank == 0:
            print(f"[worker] SCF not converged in {params['maxiter']} iterations", flush=True)
        return EXIT_UNCONVERGED
    niter = atoms.calc.get_number_of_iterations()
    wall = time.perf_counter() - start
    if world.rank == 0:
        info = dict(atoms.info)
        info.update(scf_iterations=int(niter), wall_s=round(wall, 3), gpaw_version=gpaw_version)
        info["dft_ranks"] = int(world.size)
        info["paw_setups"] = json.dumps(
            {s.symbol: s.fingerprint for s in atoms.calc.setups.setups.values()}, sort_keys=True
        )
        labelled = atoms.copy()
        labelled.info = info
        labelled.calc = SinglePointCalculator(
            labelled, energy=energy, free_energy=energy, forces=forces, stress=stress
        )
        write_frames(args.out, [labelled])
    return 0


if __name__ == "__main__":
    sys.exit(main())
