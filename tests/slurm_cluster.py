"""A throw-away single-node SLURM (munged, slurmctld, slurmd) for the SLURM profile tests.

Everything lives in one folder: the munge key and socket, slurm.conf, state, spool, logs and pid
files. Clients outside jobs find it through ``SLURM_CONF``; inside a job the slurm-jobstep executor
strips every ``SLURM_*`` variable but a few before its own ``srun``, so the config is also linked
at the compiled-in default path (``/etc/slurm/slurm.conf``), as on a real cluster. A config the
machine already had there is put back by ``stop``, which first cancels the jobs and then stops the
daemons this module started, by their process ids.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
PARTITION = "debug"
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")


def install_slurm() -> str | None:
    """Install the Debian SLURM packages if missing; return why that is impossible, or None."""
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        packages = " ".join(PACKAGES)
        return f"SLURM is not installed and this user cannot install it (apt-get {packages})"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *PACKAGES]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _node_line() -> str:
    """This host's real hardware as slurmd reports it (``slurmd -C``), as a NodeName line."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("NodeName="))
    fields = dict(item.split("=", 1) for item in line.split())
    fields["RealMemory"] = str(int(fields["RealMemory"]) * 9 // 10)  # leave the OS some room
    return " ".join(f"{k}={v}" for k, v in fields.items()) + " State=UNKNOWN"


@dataclass
class Cluster:
    """A running single-node SLURM: its folder, config file and the daemons' process ids."""

    root: Path
    conf: Path
    node: str
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """The environment for SLURM clients (sbatch, squeue, snakemake) to use this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def command(self, *args: str) -> str:
        """Run a SLURM client command against this cluster and return its standard output."""
        proc = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def job_state(self, job_id: str) -> str:
        """The state slurmctld records for a job (kept for MinJobAge after it ends)."""
        out = self.command("scontrol", "show", "job", job_id)
        return out.split("JobState=", 1)[1].split()[0]

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged by their process ids."""
        if "slurmctld" in self.pids:
            subprocess.run(["scancel", "--full", "--user", "root"], env=self.env, timeout=60)
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is not None:
                _terminate(pid)
        _unlink_default_conf(self.root)


def _link_default_conf(conf: Path) -> None:
    """Point the default slurm.conf path at `conf`, keeping a machine's own file aside."""
    DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
    if DEFAULT_CONF.is_symlink():
        DEFAULT_CONF.unlink()  # a link left by an earlier, killed test session
    elif DEFAULT_CONF.exists():
        shutil.move(DEFAULT_CONF, conf.parent / "slurm.conf.machine")
    DEFAULT_CONF.symlink_to(conf)


def _unlink_default_conf(root: Path) -> None:
    """Remove the default-path link to this cluster's config and restore the machine's file."""
    if DEFAULT_CONF.is_symlink() and DEFAULT_CONF.resolve() == (root / "slurm.conf").resolve():
        DEFAULT_CONF.unlink()
    saved = root / "slurm.conf.machine"
    if saved.exists() and not DEFAULT_CONF.exists():
        shutil.move(saved, DEFAULT_CONF)


def _terminate(pid: int, grace_s: float = 15.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + grace_s
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read_pid(path: Path, timeout_s: float = 30.0) -> int:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if path.is_file() and path.read_text().strip():
            return int(path.read_text().split()[0])
        time.sleep(0.1)
    raise RuntimeError(f"{path.name} never appeared: see the daemon logs in {path.parent}")


def slurm_conf(root: Path, node_line: str, host: str) -> str:
    """A minimal slurm.conf: this host as the only node, no accounting, jobs kept an hour."""
    return f"""\
ClusterName=potforgetest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={root}/munge.socket
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=pmi2
MinJobAge=3600
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
{node_line}
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def start_cluster(root: Path) -> Cluster:
    """Start munged, slurmctld and slurmd with everything under `root`; wait for an idle node."""
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool"):
        (root / sub).mkdir(exist_ok=True)
    node_line = _node_line()
    host = node_line.split()[0].split("=", 1)[1]
    cluster = Cluster(root=root, conf=root / "slurm.conf", node=host)
    cluster.conf.write_text(slurm_conf(root, node_line, host))
    key = root / "munge.key"
    subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True)
    key.chmod(0o600)
    daemons = {
        "munged": [
            "munged",
            "--force",
            f"--socket={root}/munge.socket",
            f"--key-file={key}",
            f"--log-file={root}/munged.log",
            f"--pid-file={root}/munged.pid",
            f"--seed-file={root}/munged.seed",
        ],
        "slurmctld": ["slurmctld", "-f", str(cluster.conf)],
        "slurmd": ["slurmd", "-f", str(cluster.conf)],
    }
    try:
        _link_default_conf(cluster.conf)
        for name, cmd in daemons.items():
            subprocess.run(cmd, env=cluster.env, check=True, capture_output=True, timeout=60)
            cluster.pids[name] = _read_pid(root / f"{name}.pid")
        deadline = time.time() + 60
        while "idle" not in cluster.command("sinfo", "-h", "-o", "%T"):
            if time.time() > deadline:
                raise RuntimeError(f"the SLURM node never became idle: see {root}/slurmd.log")
            time.sleep(0.5)
    except BaseException:
        cluster.stop()
        raise
    return cluster
