"""compute --cluster slurm on a real single-node SLURM (tests/_slurm.py): results, lost jobs, a lost client, late workers, job scripts.

The SLURM daemons start once for this module (well under a second here) and stop after it; every
test names its jobs (``job-name``) so that it finds its own in ``squeue`` / ``scontrol``. The Dask
scheduler and workers bind 127.0.0.1 (``interface: lo``). Populations are small: the machine's two
cores are shared with other work, so waits are generous and nothing is timed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dask.config
import numpy as np
import pytest
from _populations import make_store, pair_distances, runs_population
from _slurm import SlurmCluster, SlurmUnavailable
from click.testing import CliRunner
from distributed import Client

from nnstd_dist.engine import hpc
from nnstd_dist.cli.main import cli
from nnstd_dist.engine import ClusterSpec, compute
from nnstd_dist.store.topology_store import TopologyStore

pytest.importorskip("dask_jobqueue")
pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent  # the environment the jobs run (shared, as on a cluster's filesystem)
NNSTD_DIST = str(Path(sys.executable).parent / "nnstd-dist")
JOB_WAIT = 120  # seconds: a job's worker imports dask on two busy cores


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running single-node SLURM; SLURM_CONF and the Dask settings of the tests set in this process and for its children."""
    root = tmp_path_factory.mktemp("slurm")
    cluster = SlurmCluster(root)
    try:
        cluster.start()
    except SlurmUnavailable as exc:
        cluster.stop()
        pytest.skip(f"SLURM cannot start here: {exc}")
    settings = {
        "jobqueue.slurm.interface": "lo",  # scheduler and workers on 127.0.0.1
        "jobqueue.slurm.scheduler-options": {"dashboard_address": "127.0.0.1:0"},
        "jobqueue.slurm.log-directory": str(root / "jobs"),  # not slurm-N.out files in the working directory
        "jobqueue.slurm.cores": 1,
        "jobqueue.slurm.memory": "1GB",
        "jobqueue.slurm.death-timeout": 30,  # workers whose client was killed leave after 30 s
    }
    # The same settings for subprocesses (a compute that runs as a job itself), as DASK_* variables.
    env = {f"DASK_{key.upper().replace('.', '__').replace('-', '_')}": repr(value) for key, value in settings.items()}
    env["SLURM_CONF"] = str(cluster.conf)
    with pytest.MonkeyPatch.context() as mp, dask.config.set(settings):
        for name, value in env.items():
            mp.setenv(name, value)
        cluster.env.update(env)
        yield cluster
    cluster.stop()


@pytest.fixture
def population(tmp_path):
    """12 networks (66 pairs) in a store, and their distances from the kernel."""
    networks, records = runs_population(3, [0, 10, 20, 30], seed=14)
    path = tmp_path / "topos.zarr"
    make_store(path, networks, records, tile=None)
    return path, pair_distances(networks)


def _stored(path) -> np.ndarray:
    return TopologyStore.open(path).read_distance()


def _jobs_named(slurm, name: str) -> dict[str, dict[str, str]]:
    """Every job SLURM remembers (queued, running or finished) named ``name``: id -> scontrol fields."""
    out = slurm.run("scontrol", "--oneliner", "show", "job", check=False).stdout
    jobs = [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in out.splitlines() if line.strip()]
    return {j["JobId"]: j for j in jobs if j.get("JobName") == name}


# --------------------------------------------------------------------------- results


def test_compute_on_slurm_jobs_equals_the_kernel_and_links_a_live_dashboard(slurm, population):
    path, expected = population
    seen = {}

    def on_progress(p):
        if p.note is None and p.tiles_done == 0:  # the link printed at the start (notes come first), fetched while the run holds the scheduler
            seen["dashboard"] = p.dashboard
            seen["status"] = urllib.request.urlopen(p.dashboard, timeout=30).status

    spec = ClusterSpec(job_queue="slurm", job_options=("name=nnstd-e2e",), jobs=(1, 2))
    plan, stats = compute(path, tile=4, cluster=spec, on_progress=on_progress)
    np.testing.assert_array_equal(_stored(path), expected)
    assert stats.pairs == 66 and stats.tiles == len(plan.tasks) == 6
    assert seen["status"] == 200 and re.fullmatch(r"http://127\.0\.0\.1:\d+/status", seen["dashboard"])
    # Counted from the tiles' own reports: the processes that computed, not the 0 workers present at the start.
    assert stats.workers == len(stats.peak_rss) >= 1
    assert not stats.refused
    jobs = _jobs_named(slurm, "nnstd-e2e")
    assert 1 <= len(jobs) <= 2 and all(j["JobState"] in ("COMPLETED", "CANCELLED", "COMPLETING") for j in jobs.values())


def test_cluster_options_reach_the_job_script_slurm_ran(slurm, population):
    path, expected = population
    options = ["name=nnstd-options", "walltime=00:07:00", "memory=900MB", "job-extra-directives=--comment=set-from-the-cli",
               "job-script-prologue=export NNSTD_FROM_PROLOGUE=42"]
    args = ["compute", "--store", str(path), "--cluster", "slurm", "--jobs", "1"]
    result = CliRunner().invoke(cli, [*args, *(a for o in options for a in ("--cluster-option", o))])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(_stored(path), expected)
    lines = result.output.splitlines()
    assert lines[0].startswith("Starting: 66 pairs of 12 networks with the exact solver, every layer, on the slurm cluster of 1 to 1 batch jobs")
    assert re.fullmatch(r"66 pairs in \d+ tiles? as workers join; dashboard http://127\.0\.0\.1:\d+/status", lines[1])
    assert re.search(r"\(\d+\.\d pairs/s; tiles ran on 1 worker process\); distances in", lines[-1])  # --jobs 1: one job, one worker process
    (job_id, job), = _jobs_named(slurm, "nnstd-options").items()
    assert job["TimeLimit"] == "00:07:00" and job["Comment"] == "set-from-the-cli" and job["MinMemoryNode"] == "859M"
    script = slurm.batch_script(job_id).splitlines()
    assert {"#SBATCH -J nnstd-options", "#SBATCH -t 00:07:00", "#SBATCH --mem=859M", "#SBATCH --comment=set-from-the-cli",
            "export NNSTD_FROM_PROLOGUE=42"} <= set(script)
    assert "--interface lo" in script[-1] and script[-1].startswith(f"{sys.executable} -m distributed.cli.dask_worker tcp://127.0.0.1:")


# --------------------------------------------------------------------------- jobs that end early


def test_a_worker_job_cancelled_mid_run_is_replaced_and_the_matrix_is_identical(slurm, population):
    path, expected = population
    cancelled = []

    def on_progress(p):
        if p.tiles_done == 3 and not cancelled:  # as a time limit or a preemption would, mid-run
            (job_id,) = [j for j, job in _jobs_named(slurm, "nnstd-scancel").items() if job["JobState"] == "RUNNING"]
            slurm.run("scancel", job_id)
            cancelled.append(job_id)

    spec = ClusterSpec(job_queue="slurm", job_options=("name=nnstd-scancel",), jobs=(1, 1))
    plan, stats = compute(path, tile=2, cluster=spec, on_progress=on_progress)
    np.testing.assert_array_equal(_stored(path), expected)
    assert stats.tiles == len(plan.tasks) == 21
    jobs = _jobs_named(slurm, "nnstd-scancel")
    assert jobs[cancelled[0]]["JobState"] == "CANCELLED"
    assert len(jobs) >= 2  # adaptive scaling submitted a replacement...
    assert stats.workers >= 2  # ...whose worker computed the tiles that were left


def test_a_killed_client_job_resumes_from_another_job(slurm, population, tmp_path):
    path, expected = population
    compute_job = [NNSTD_DIST, "compute", "--store", str(path), "--cluster", "slurm", "--jobs", "1", "--tile", "2",
                   "--cluster-option", "name=nnstd-killed-workers"]
    first = slurm.sbatch("--job-name=nnstd-client", f"--output={tmp_path / 'first.out'}", "--mem=500M", "--wrap", " ".join(compute_job))

    def tiles_done() -> int:
        with contextlib.suppress(Exception):  # the store's result arrays may not exist yet
            return int(np.count_nonzero(TopologyStore.open(path).tile_markers()))
        return 0

    slurm.wait_until(lambda: tiles_done() >= 3, JOB_WAIT, "the first compute to write 3 tiles")
    slurm.run("scancel", "--full", "--signal=KILL", first)  # the client's allocation ends without warning
    slurm.wait_until(lambda: first not in slurm.jobs(), 60, "the client job to end")
    done_before = tiles_done()
    assert done_before < 21, "the first run finished before it was killed: nothing left to resume"
    # The store still names the dead client in its lock; the next run on this host sees that process is gone.
    second = slurm.sbatch("--job-name=nnstd-client", "--wait", f"--output={tmp_path / 'second.out'}", "--mem=500M", "--wrap",
                          " ".join(compute_job[:-1] + ["name=nnstd-resumed-workers"]))
    output = (tmp_path / "second.out").read_text()
    assert slurm.show_job(second)["JobState"] == "COMPLETED", output
    np.testing.assert_array_equal(_stored(path), expected)
    computed = int(re.search(r"Computed (\d+) pairs in (\d+) tiles", output).group(2))
    # Tiles the dead client's orphaned worker finished after the kill are not computed again either.
    assert 0 < computed <= 21 - done_before


# --------------------------------------------------------------------------- late workers


def test_a_late_worker_with_another_nnstd_dist_is_refused_and_the_run_goes_on(slurm, population, tmp_path, caplog):
    path, expected = population
    # A real different install: a copy of the package reporting another version, first on the odd worker's PYTHONPATH.
    odd = tmp_path / "odd"
    shutil.copytree(ROOT / "nnstd_dist", odd / "nnstd_dist", ignore=shutil.ignore_patterns("__pycache__"))
    init = odd / "nnstd_dist" / "__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]+"', '__version__ = "0.0.0+odd"', init.read_text()))
    odd_job = []

    with hpc.make_job_cluster("slurm", ["name=nnstd-good"], jobs=(1, 1)) as cluster, Client(cluster) as client:
        def on_progress(p):
            if p.tiles_done == 2 and not odd_job:  # joins mid-run, after the first workers' check
                worker = f"{sys.executable} -m distributed.cli.dask_worker {cluster.scheduler_address} --nthreads 1 --interface lo"
                # --chdir: `python -m` puts the working directory first on sys.path, and the repository's nnstd_dist is there.
                odd_job.append(slurm.sbatch("--job-name=nnstd-odd", f"--chdir={tmp_path}", f"--output={tmp_path / 'odd.out'}", "--mem=500M",
                                            f"--export=ALL,PYTHONPATH={odd}", "--wrap", worker))
                # The gate closes it as it registers, which ends its job; tiles keep going to the good worker meanwhile.
                slurm.wait_until(lambda: odd_job[0] not in slurm.jobs(), JOB_WAIT, "the odd worker's job to end")

        with caplog.at_level(logging.WARNING, logger="nnstd_dist.engine.gate"):
            plan, stats = compute(path, tile=2, client=client, on_progress=on_progress)

    np.testing.assert_array_equal(_stored(path), expected)
    assert stats.tiles == len(plan.tasks) and stats.workers == 1
    (address, why), = stats.refused.items()
    assert why == "nnstd-dist 0.0.0+odd (client 0.1.0)"
    assert f"refused worker {address} on {slurm.host}, batch job {odd_job[0]}: nnstd-dist 0.0.0+odd (client 0.1.0); the run goes on with the others" in caplog.messages
    assert "environment differs from the client's" in (tmp_path / "odd.out").read_text()
    assert slurm.show_job(odd_job[0])["JobState"] == "COMPLETED"  # it closed itself: the allocation was freed


# --------------------------------------------------------------------------- dask-jobqueue on real sbatch / scancel


def test_closing_the_cluster_cancels_its_jobs(slurm):
    cluster = hpc.make_job_cluster("slurm", ["name=nnstd-close", "cores=2", "processes=2"], jobs=(1, 3))
    try:
        assert (cluster._adaptive.minimum, cluster._adaptive.maximum) == (2, 6)  # bounds in worker processes: 2 per job
        slurm.wait_until(lambda: _jobs_named(slurm, "nnstd-close"), 30, "the first job")
        time.sleep(2)  # two adaptive intervals: with no task waiting, MIN = 1 job stays one job
    finally:
        cluster.close()
    slurm.wait_until(lambda: not slurm.jobs(name="nnstd-close"), 60, "the job to be cancelled")
    (job,) = _jobs_named(slurm, "nnstd-close").values()
    assert job["JobState"] == "CANCELLED"


def test_a_minimum_of_zero_jobs_submits_nothing(slurm):
    cluster = hpc.make_job_cluster("slurm", ["name=nnstd-zero"], jobs=(0, 3))
    try:
        time.sleep(2.5)  # more than two adaptive intervals (1 s)
    finally:
        cluster.close()
    assert _jobs_named(slurm, "nnstd-zero") == {}


# --------------------------------------------------------------------------- docs/cluster.md


def _documented_sbatch_script() -> str:
    text = (ROOT / "docs" / "cluster.md").read_text()
    section = text.split("## One batch job with a scheduler file", 1)[1]
    return re.search(r"```bash\n(#!/bin/bash\n.*?)```", section, re.S).group(1)


def test_the_documented_sbatch_script_runs_as_written(slurm, population, tmp_path):
    path, expected = population
    script = _documented_sbatch_script()
    # Only the site's values change: where the environment and the shared folder are, the nodes' network, the dashboard's port.
    site = {"/shared/envs/nnstd": str(VENV), "/shared/nnstd": str(tmp_path), "IFACE=ib0": "IFACE=lo",
            "DASHBOARD=:8787": "DASHBOARD=127.0.0.1:0"}
    for documented, here in site.items():
        assert documented in script
        script = script.replace(documented, here)
    assert path == tmp_path / "topos.zarr"  # where the script's STORE now points
    (tmp_path / "job.sh").write_text(script)
    # One node with 3 tasks (scheduler, one worker, the script) instead of the template's 4 x 32, on the command line.
    job = slurm.sbatch("--wait", "--nodes=1", "--ntasks-per-node=3", "--mem-per-cpu=700M", "--time=00:10:00",
                       f"--output={tmp_path / 'job.out'}", str(tmp_path / "job.sh"))
    output = (tmp_path / "job.out").read_text()
    assert slurm.show_job(job)["JobState"] == "COMPLETED", output
    assert "Computed 66 pairs" in output and "tiles ran on 1 worker process)" in output
    np.testing.assert_array_equal(_stored(tmp_path / "topos.zarr"), expected)
