"""A compiled member made from another member's compiled model by swapping the weights.

An AOTInductor model for the CPU (.nequip.pt2) is one shared object: kernels generated from the
model's architecture, and the weights in one constants blob between the symbols
`_binary_constants_bin_start` and `_binary_constants_bin_end`, each weight at a 64-byte aligned
offset. Members of one committee share the architecture and the data statistics, and their
generated sources are identical but for cache paths (measured on the default campaign's final
members), so a member's compiled model is its sibling's with the weights of the blob
overwritten: seconds instead of a minute-long compile.

The swap refuses (WeightSwapError) unless every tensor of the new member has the template's
name, shape and dtype, and every tensor that differs sits exactly once in the constants blob or
differs by float rounding only. Scalars the compiler folded into the code (energy scales,
normalisation constants) are then equal, so the code is right for the new member.
`swap_weights` checks the result against the member's own eager model before anything is
written where a compiled model is expected.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from potforge.errors import PotforgeError

CONSTANTS_ALIGNMENT = 64  # AOTInductor's ALIGN_BYTES for CPU constants
BLOB_SYMBOLS = ("_binary_constants_bin_start", "_binary_constants_bin_end")
# The speed issue's bar for a fast-path model against the member's own model.
ENERGY_TOLERANCE_EV_PER_ATOM = 1e-5
FORCE_TOLERANCE_EV_PER_A = 1e-4
# Members' data statistics (the energy scale) can differ in the last bit: each member sums the
# same data in its own order (seen: 2.677186213791283 vs 2.6771862137912827). Such a tensor,
# folded into the code, keeps the template's value; the check against the member's own model
# bounds what that changes.
ROUNDING_TOLERANCE = 1e-12


class WeightSwapError(PotforgeError):
    """The template's compiled code does not fit the new member: compile it instead."""


def _elf_sections(so: bytes) -> list[tuple[int, int, int, int, int, int]]:
    """Return (type, addr, offset, size, link, entsize) of each section of a 64-bit ELF file."""
    if so[:4] != b"\x7fELF" or so[4] != 2 or so[5] != 1:
        raise WeightSwapError("the compiled model's library is not a 64-bit little-endian ELF")
    shoff = struct.unpack_from("<Q", so, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", so, 0x3A)
    sections = []
    for k in range(shnum):
        base = shoff + k * shentsize
        sh_type = struct.unpack_from("<I", so, base + 4)[0]
        addr, offset, size = struct.unpack_from("<QQQ", so, base + 0x10)
        link = struct.unpack_from("<I", so, base + 0x28)[0]
        entsize = struct.unpack_from("<Q", so, base + 0x38)[0]
        sections.append((sh_type, addr, offset, size, link, entsize))
    return sections


def constants_region(so: bytes) -> tuple[int, int]:
    """Return the file offsets [start, end) of the constants blob of an AOTInductor library."""
    sections = _elf_sections(so)
    found: dict[str, int] = {}
    for sh_type, _, offset, size, link, entsize in sections:
        if sh_type not in (2, 11) or not entsize:  # SHT_SYMTAB, SHT_DYNSYM
            continue
        strtab = sections[link][2]
        for base in range(offset, offset + size, entsize):
            name_off, _, _, shndx, value = struct.unpack_from("<IBBHQ", so, base)
            end = so.index(b"\0", strtab + name_off)
            name = so[strtab + name_off : end].decode(errors="replace")
            if name in BLOB_SYMBOLS and 0 < shndx < len(sections):
                _, sec_addr, sec_offset, _, _, _ = sections[shndx]
                found[name] = sec_offset + value - sec_addr
    if set(found) != set(BLOB_SYMBOLS):
        raise WeightSwapError("the compiled model keeps no constants blob in its library")
    start, end = (found[s] for s in BLOB_SYMBOLS)
    if not 0 <= start <= end <= len(so):
        raise WeightSwapError(f"constants blob [{start}, {end}) lies outside the library")
    return start, end


def model_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """Return every parameter and buffer of a packaged or checkpointed member, by name."""
    from potforge.train.models import load_model

    module = load_model(path).module
    named = list(module.named_parameters()) + list(module.named_buffers())
    return {name: t.detach().cpu().contiguous().numpy() for name, t in named}


def _occurrences(so: bytes, data: bytes) -> list[int]:
    """Return every offset of `data` in the library."""
    hits, at = [], so.find(data)
    while at >= 0:
        hits.append(at)
        at = so.find(data, at + 1)
    return hits


def _same_but_rounding(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two float tensors differ by float rounding only (1e-12 relative)."""
    if a.dtype.kind != "f":
        return False
    return bool(np.all(np.abs(a - b) <= ROUNDING_TOLERANCE * np.abs(a)))


def patched_library(
    so: bytes, template: Mapping[str, np.ndarray], member: Mapping[str, np.ndarray]
) -> tuple[bytes, dict[str, int]]:
    """Return the library with the member's tensors written over the template's in the blob."""
    if set(template) != set(member):
        extra = sorted(set(member) ^ set(template))[:3]
        raise WeightSwapError(f"the models have different tensors ({', '.join(extra)} ...)")
    start, end = constants_region(so)
    out = bytearray(so)
    counts = {"swapped": 0, "equal": 0, "rounded": 0}
    for name in sorted(template):
        old, new = template[name], member[name]
        if old.shape != new.shape or old.dtype != new.dtype:
            raise WeightSwapError(
                f"{name}: {new.dtype}{list(new.shape)} where the template has "
                f"{old.dtype}{list(old.shape)}"
            )
        old_bytes, new_bytes = old.tobytes(), new.tobytes()
        if old_bytes == new_bytes:
            counts["equal"] += 1
            continue
        hits = _occurrences(so, old_bytes)
        inside = [h for h in hits if start <= h < end and (h - start) % CONSTANTS_ALIGNMENT == 0]
        if (len(hits) != 1 or len(inside) != 1) and _same_but_rounding(old, new):
            counts["rounded"] += 1  # folded into the code: the template's value stays
            continue
        if len(hits) != 1 or len(inside) != 1:
            where = "nowhere" if not hits else f"{len(hits)} times, {len(inside)} in the blob"
            raise WeightSwapError(
                f"{name} differs from the template's and is found {where} in its library "
                "(folded into the code, or ambiguous)"
            )
        out[inside[0] : inside[0] + len(new_bytes)] = new_bytes
        counts["swapped"] += 1
    if not counts["swapped"]:
        raise WeightSwapError("the member has the template's weights: nothing to swap")
    return bytes(out), counts


def write_swapped(template_pt2: Path, library: bytes, out: Path) -> None:
    """Write a copy of the template's .pt2 archive whose one shared object is `library`."""
    with zipfile.ZipFile(template_pt2) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = library if info.filename.endswith(".so") else src.read(info)
            dst.writestr(info, data, compress_type=info.compress_type)


def library_of(pt2: Path) -> bytes:
    """Return the one shared object inside a compiled model archive."""
    with zipfile.ZipFile(pt2) as z:
        names = [n for n in z.namelist() if n.endswith(".so")]
        if len(names) != 1:
            raise WeightSwapError(f"{pt2}: {len(names)} shared objects, expected one")
        return z.read(names[0])


def model_agreement(compiled: Path, reference: Path, frames: list[Any]) -> dict[str, float]:
    """Return the largest energy (eV/atom) and force (eV/A) gaps of a compiled model to another."""
    from potforge.train.models import load_model, predict

    a = predict(load_model(compiled), frames)
    b = predict(load_model(reference), frames)
    natoms = np.array([len(f) for f in frames])
    return {
        "energy_ev_per_atom": float(np.max(np.abs(a.energies - b.energies) / natoms)),
        "force_ev_per_a": float(
            max(np.abs(x - y).max() for x, y in zip(a.forces, b.forces, strict=True))
        ),
    }


def swap_weights(
    template_pt2: str | Path,
    template_model: str | Path,
    member_model: str | Path,
    out: str | Path,
    frames: list[Any],
) -> dict[str, Any]:
    """Make `out`, the member's compiled model, from a sibling's compiled model and weights.

    `template_model` is the model the template was compiled from, `member_model` the member's
    package; `frames` check the result against the member's own model. Raises WeightSwapError
    (and writes nothing at `out`) when the code does not fit or the check fails.
    """
    template_pt2, out = Path(template_pt2), Path(out)
    library, counts = patched_library(
        library_of(template_pt2), model_tensors(template_model), model_tensors(member_model)
    )
    tmp = out.with_name(f".{out.name}.swapping.nequip.pt2")
    try:
        write_swapped(template_pt2, library, tmp)
        gaps = model_agreement(tmp, Path(member_model), frames)
        if (
            gaps["energy_ev_per_atom"] > ENERGY_TOLERANCE_EV_PER_ATOM
            or gaps["force_ev_per_a"] > FORCE_TOLERANCE_EV_PER_A
        ):
            raise WeightSwapError(
                f"the swapped model is {gaps['energy_ev_per_atom']:.2g} eV/atom and "
                f"{gaps['force_ev_per_a']:.2g} eV/A from the member's own model (tolerance "
                f"{ENERGY_TOLERANCE_EV_PER_ATOM:g} / {FORCE_TOLERANCE_EV_PER_A:g})"
            )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return {**counts, "template": str(template_pt2), "max_gap": gaps}
