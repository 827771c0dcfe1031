"""Content hashes: structure identity, settings identity and the hash-based dataset split."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from ase import Atoms

SPLITS = ("train", "validation", "test")


def structure_hash(atoms: Atoms, decimals: int = 5) -> str:
    """Return a 16-hex-digit hash of species, wrapped fractional positions, cell and pbc."""
    scaled = np.round(atoms.get_scaled_positions(wrap=True), decimals) % 1.0
    h = hashlib.sha256()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(scaled, decimals).astype(np.float64).tobytes())
    h.update(np.round(atoms.cell.array, decimals).astype(np.float64).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=np.int8).tobytes())
    return readable_digest(h.hexdigest()[:16])


def settings_hash(settings: Mapping[str, Any]) -> str:
    """Return a 12-hex-digit hash of a JSON-serialisable settings mapping."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return readable_digest(hashlib.sha256(text.encode()).hexdigest()[:12])


def readable_digest(digest: str) -> str:
    """Return a hex digest as text no reader takes for a number: 'x' before one that parses.

    About 1 in 600 16-digit digests is all decimal digits ('0135566688143342') or digits around
    one 'e' ('0123456789e12345'): extended XYZ reads those back as numbers (leading zeros lost)
    and an ASE database refuses them as strings. 'x' is no hex digit, so the map stays one-to-one
    and every other digest is unchanged.
    """
    try:
        float(digest)
    except ValueError:
        return digest
    return f"x{digest}"


def split_of(key: str, fractions: Mapping[str, float]) -> str:
    """Assign a hash key to train/validation/test: stable, uniform and independent of the rest."""
    u = hash_fraction(key)
    edge = 0.0
    for name in SPLITS:
        edge += fractions[name]
        if u < edge:
            return name
    return SPLITS[-1]


def hash_fraction(key: str) -> float:
    """Map a key to a uniform number in [0, 1)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:13], 16) / 16**13
