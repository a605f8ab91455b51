"""A private single-node SLURM for the tests: munged, slurmctld and slurmd with their own key, config, ports and folders.

Nothing under /etc or /run is touched: the daemons and every SLURM command find the config through
``SLURM_CONF`` and talk to munged through its own socket (``AuthInfo=socket=...``), so this cluster
can run beside a system SLURM, or another test run's. Ports are picked free; every daemon binds
127.0.0.1 only. slurmd must be root to start jobs, so the cluster needs root (CI runs as root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
COMMANDS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo", "srun")


class SlurmUnavailable(RuntimeError):
    """Why SLURM cannot run here (the tests skip with this text)."""


def _which(name: str) -> str:
    # The daemons live in /usr/sbin, which is not on every user's PATH.
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise SlurmUnavailable(f"no `{name}`: install Debian's slurm-wlm and munge (CI does: .ci/run as root)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    """MemAvailable in MiB, from /proc/meminfo."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise SlurmUnavailable("no MemAvailable in /proc/meminfo")


class SlurmCluster:
    """One node named after this host; ``env`` is what a SLURM command (sbatch, squeue...) needs to reach it."""

    # Jobs of the tests are small single-threaded Dask workers: declaring 4 CPUs (with config_overrides,
    # which stops slurmd from draining a node that has fewer) lets 3-4 of them run at once on 2 cores.
    CPUS = max(4, os.cpu_count() or 1)

    def __init__(self, root: Path):
        self.root = Path(root)
        self.host = socket.gethostname()
        self.conf = self.root / "slurm.conf"
        self.socket = self.root / "munge" / "munge.socket"
        self.logs = self.root / "log"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.memory_mb = 0
        self.start_seconds = 0.0

    # ------------------------------------------------------------------ start / stop

    def start(self, timeout: float = 30.0) -> "SlurmCluster":
        if os.geteuid() != 0:
            raise SlurmUnavailable("slurmd must run as root to start jobs; run the SLURM tests as root (as CI does)")
        binaries = {name: _which(name) for name in (*DAEMONS, *COMMANDS)}
        started = time.perf_counter()
        self._write_files()
        munge = self.root / "munge"
        subprocess.run(
            [binaries["munged"], "--force", f"--socket={self.socket}", f"--key-file={munge / 'munge.key'}",
             f"--log-file={munge / 'munged.log'}", f"--pid-file={munge / 'munged.pid'}", f"--seed-file={munge / 'munged.seed'}"],
            check=True, capture_output=True, timeout=timeout,
        )
        for daemon in ("slurmctld", "slurmd"):
            done = subprocess.run([binaries[daemon], "-f", str(self.conf)], env=self.env, capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                raise SlurmUnavailable(f"{daemon} did not start: {done.stderr.strip()[-300:]} {self._log_tail(daemon)}")
        deadline = time.monotonic() + timeout
        while self.node_state() != "idle":
            if time.monotonic() > deadline:
                raise SlurmUnavailable(f"node {self.host} not idle after {timeout:.0f} s (state {self.node_state()!r}); {self._log_tail('slurmd')}")
            time.sleep(0.2)
        self.start_seconds = time.perf_counter() - started
        return self

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (by the pids they wrote) and wait for them to exit."""
        with contextlib.suppress(Exception):
            self.run("scancel", "--full", "--user", str(os.geteuid()), check=False)
            deadline = time.monotonic() + 20
            while self.jobs() and time.monotonic() < deadline:
                time.sleep(0.2)
        for pid_file in (self.root / "slurmd.pid", self.root / "slurmctld.pid", self.root / "munge" / "munged.pid"):
            with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 20
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)

    def _write_files(self) -> None:
        for folder in ("state", "spool", "log", "munge", "jobs"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o711)  # munged wants its socket folder searchable by all, writable by it only
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        # Half of what is free, at most 8 GiB: the tests' jobs ask for 1 GB or less each.
        self.memory_mb = min(8192, _memory_mb() // 2)
        r = self.root
        self.conf.write_text("\n".join([
            "ClusterName=nnstdtest",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.socket}",
            "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny",  # bind 127.0.0.1, not every interface
            "SlurmUser=root",
            "SlurmdUser=root",
            "SlurmdParameters=config_overrides",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "MpiDefault=none",
            "ReturnToService=2",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "KillWait=5",  # seconds between a job's SIGTERM and its SIGKILL (default 30)
            "MinJobAge=600",  # keep finished jobs visible to `scontrol show job` for the test's lifetime
            "DefMemPerCPU=500",  # MiB; without it a job given no --mem holds all of the node's memory
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.CPUS} RealMemory={self.memory_mb} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))
        # Read from the slurm.conf folder; 22.05 knows no CgroupPlugin=disabled (slurmd stops), cgroup/v1 works here.
        (self.root / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\n")

    def _log_tail(self, daemon: str, lines: int = 5) -> str:
        log = self.logs / f"{daemon}.log"
        return " | ".join(log.read_text().splitlines()[-lines:]) if log.exists() else ""

    # ------------------------------------------------------------------ commands

    def run(self, *args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    def node_state(self) -> str:
        done = self.run("sinfo", "--noheader", "--format=%T", check=False, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else ""

    def jobs(self, name: str | None = None) -> dict[str, str]:
        """Job id -> state (PENDING, RUNNING...) of the jobs SLURM still lists as queued or running."""
        args = ["squeue", "--noheader", "--format=%i %T"] + ([f"--name={name}"] if name else [])
        return dict(line.split() for line in self.run(*args).stdout.splitlines() if line.strip())

    def show_job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job``, as KEY -> VALUE."""
        text = self.run("scontrol", "--oneliner", "show", "job", str(job_id)).stdout
        return dict(field.split("=", 1) for field in text.split() if "=" in field)

    def batch_script(self, job_id: str) -> str:
        """The script SLURM stored for the job and ran (``scontrol write batch_script``)."""
        return self.run("scontrol", "write", "batch_script", str(job_id), "-").stdout

    def sbatch(self, *args: str) -> str:
        """Submit; returns the job id."""
        return self.run("sbatch", "--parsable", *args).stdout.strip().split(";")[0]

    def wait_until(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; slurmctld: {self._log_tail('slurmctld')}")
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for whichever process adopted the daemon to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
