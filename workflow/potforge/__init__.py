"""potforge: active-learning workflow for NequIP interatomic potentials."""

__version__ = "0.1.0"
