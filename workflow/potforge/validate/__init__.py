"""Stage 7: validation of a committee against DFT, on frames it did not choose and on properties.

One code path for every potential: each property is a function of an ASE calculator, so the
DFT reference (GPAW), the committee and the peer potentials (LAMMPS pair styles) are measured
by the same lines.
"""
