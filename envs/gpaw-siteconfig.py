# GPAW build configuration used by envs/setup.sh (read through GPAW_CONFIG).
# MPI comes from the MPICH wheel's mpic++ on PATH; BLAS/LAPACK from OpenBLAS; XC from libxc.
# flake8: noqa
fftw = True
libraries += ["blas", "fftw3"]  # `libraries` (already holding "xc") comes from GPAW's setup.py
