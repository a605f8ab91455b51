"""dask-jobqueue clusters: typed --cluster-option values, jobqueue config defaults, and the job scripts they give.

No SLURM or PBS is installed here: a job-queue cluster can be built and its job script rendered
without sbatch/qsub, as long as no job is submitted (no scale, adapt with a minimum of 0 jobs).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

import dask.config
import numpy as np
import pytest

from nnstd_dist import hpc
from nnstd_dist.errors import ClusterError

pytest.importorskip("dask_jobqueue")


@pytest.fixture(autouse=True)
def any_free_dashboard_port():
    """Job-queue schedulers start here; on :8787 (the default) two at once would collide."""
    no_fixed_port = {"dashboard_address": ":0"}
    with dask.config.set({"jobqueue.slurm.scheduler-options": no_fixed_port, "jobqueue.pbs.scheduler-options": no_fixed_port}):
        yield


@pytest.fixture
def job_cluster():
    """`job_cluster(kind, options)` -> a cluster closed after the test."""
    made = []

    def make(kind, options=()):
        made.append(hpc.job_cluster(kind, options))
        return made[-1]

    yield make
    for cluster in made:
        cluster.close()


# --------------------------------------------------------------------------- --jobs


@pytest.mark.parametrize("text, jobs", [("2:10", (2, 10)), ("0:4", (0, 4)), ("3", (3, 3))], ids=["min-max", "zero-min", "single"])
def test_jobs_parse(text, jobs):
    assert hpc.parse_jobs(text) == jobs


@pytest.mark.parametrize("text", ["a:b", "5:2", "0:0", "-1:3", "1:2:3"], ids=["words", "min-above-max", "no-job", "negative", "three"])
def test_bad_jobs_are_refused(text):
    with pytest.raises(ClusterError, match=rf"^--jobs '{text}'"):
        hpc.parse_jobs(text)


# --------------------------------------------------------------------------- --cluster-option values


def test_options_are_typed_from_their_key():
    kwargs = hpc.parse_cluster_options("slurm", [
        "cores=8", "memory=16GB", "queue=short", "death-timeout=120",
        "job-extra-directives=--gres=gpu:1", "job_extra_directives=--exclude=n1,n2", "walltime=01:00:00",
    ])
    assert kwargs == {
        "cores": 8, "memory": "16GB", "queue": "short", "death_timeout": 120,
        # repeated list keys collect in order; a value may itself hold '=' and ','
        "job_extra_directives": ["--gres=gpu:1", "--exclude=n1,n2"], "walltime": "01:00:00",
    }


def test_a_mapping_of_options_is_accepted():
    assert hpc.parse_cluster_options("pbs", {"cores": 4, "job_script_prologue": ["module load a", "module load b"]}) == {
        "cores": 4, "job_script_prologue": ["module load a", "module load b"],
    }


@pytest.mark.parametrize(
    "option, message",
    [
        ("cores=eight", r"^--cluster-option cores=eight: cores must be an integer$"),
        ("memory=lots", r"^--cluster-option memory=lots: not a memory size"),
        ("quue=short", r"^--cluster-option quue: not a jobqueue.slurm setting; known: account, cores, .*, walltime"),
        ("job-extra=--x", r"^--cluster-option job-extra: not a jobqueue.slurm setting"),  # deprecated by dask-jobqueue
        ("scheduler-options=port:0", r"^--cluster-option scheduler_options: a mapping; set jobqueue.slurm.scheduler-options in jobqueue.yaml"),
        ("cores", r"^--cluster-option 'cores': expected KEY=VALUE"),
    ],
    ids=["bad-int", "bad-memory", "typo", "deprecated", "mapping", "no-value"],
)
def test_bad_options_are_refused_on_one_line(option, message):
    with pytest.raises(ClusterError, match=message):
        hpc.parse_cluster_options("slurm", [option])


def test_unknown_kind_is_refused():
    with pytest.raises(ClusterError, match=r"^--cluster 'sge': expected one of slurm, pbs$"):
        hpc.job_cluster("sge", [])


def test_without_the_hpc_extra_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if dask-jobqueue were not installed
    with pytest.raises(ClusterError, match=r"^--cluster slurm needs dask-jobqueue: pip install 'nnstd-dist\[hpc\]'$"):
        hpc.job_cluster("slurm", ["cores=1", "memory=1GB"])


@pytest.mark.parametrize("options, missing", [([], "cores or memory"), (["cores=4"], "memory"), (["memory=4GB"], "cores")],
                         ids=["both", "memory", "cores"])
def test_a_job_needs_cores_and_memory(options, missing):
    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        with pytest.raises(ClusterError, match=rf"^--cluster slurm: no {missing} per job; set jobqueue.slurm"):
            hpc.job_cluster("slurm", options)


# --------------------------------------------------------------------------- job scripts


def test_slurm_job_script_holds_the_options(job_cluster):
    cluster = job_cluster("slurm", [
        "cores=4", "memory=8GB", "processes=2", "queue=short", "account=proj42", "walltime=02:00:00",
        "job-extra-directives=--gres=gpu:1", "job-extra-directives=--exclusive", "job-script-prologue=module load python/3.11",
    ])
    script = cluster.job_script()
    for line in ["#SBATCH -p short", "#SBATCH -A proj42", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G",
                 "#SBATCH -t 02:00:00", "#SBATCH --gres=gpu:1", "#SBATCH --exclusive", "module load python/3.11"]:
        assert line in script.splitlines()
    worker = script.splitlines()[-1]
    assert f"{sys.executable} -m distributed.cli.dask_worker {cluster.scheduler_address}" in worker
    assert "--nthreads 2" in worker and "--nworkers 2" in worker  # 4 cores shared by 2 worker processes


def test_pbs_job_script_holds_the_options(job_cluster):
    script = job_cluster("pbs", {
        "cores": 4, "memory": "8GB", "queue": "workq", "account": "proj42", "walltime": "00:45:00",
        "resource_spec": "select=1:ncpus=4:mem=8GB",
    }).job_script()
    for line in ["#PBS -q workq", "#PBS -A proj42", "#PBS -l select=1:ncpus=4:mem=8GB", "#PBS -l walltime=00:45:00"]:
        assert line in script.splitlines()


def test_jobqueue_config_is_the_default_and_options_override_it(job_cluster):
    # What a jobqueue.yaml under ~/.config/dask sets; dask.config.set puts the same keys in place.
    yaml_settings = {"jobqueue.slurm.cores": 2, "jobqueue.slurm.memory": "4GB", "jobqueue.slurm.queue": "from-yaml",
                     "jobqueue.slurm.job-extra-directives": ["--constraint=cpu"]}
    with dask.config.set(yaml_settings):
        from_config = job_cluster("slurm").job_script().splitlines()
        overridden = job_cluster("slurm", ["queue=from-cli", "memory=6GB"]).job_script().splitlines()
    assert {"#SBATCH -p from-yaml", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=4G", "#SBATCH --constraint=cpu"} <= set(from_config)
    assert {"#SBATCH -p from-cli", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=6G", "#SBATCH --constraint=cpu"} <= set(overridden)


@pytest.fixture
def fake_sbatch(tmp_path, monkeypatch):
    """`sbatch` and `scancel` stand-ins on PATH: they log what they are given; the log's path is returned."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\n{{ echo "sbatch $1"; cat "$1"; }} >> {log}\necho "Submitted batch job 4242"\n')
    (bin_dir / "scancel").write_text(f'#!/bin/sh\necho "scancel $*" >> {log}\n')
    for tool in ("sbatch", "scancel"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log.touch()
    return log


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_make_job_cluster_submits_jobs_with_the_options_and_cancels_them(fake_sbatch):
    cluster = hpc.make_job_cluster("slurm", ["cores=4", "memory=8GB", "processes=2", "queue=short"], jobs=(1, 3))
    try:
        # Bounds in worker processes: 2 per job.
        assert (cluster._adaptive.minimum, cluster._adaptive.maximum) == (2, 6)
        _wait_for(lambda: "#SBATCH -p short" in fake_sbatch.read_text())
    finally:
        cluster.close()
    calls = fake_sbatch.read_text().splitlines()
    assert [c for c in calls if c.startswith("sbatch ")] and "#SBATCH -p short" in calls and "#SBATCH --cpus-per-task=4" in calls
    assert calls.count("#SBATCH -p short") == 1  # MIN = 1 job and no task to ask for more
    assert calls[-1] == "scancel 4242"  # closing the cluster cancels the job it submitted


def test_a_minimum_of_zero_jobs_submits_nothing(fake_sbatch):
    cluster = hpc.make_job_cluster("slurm", ["cores=4", "memory=8GB", "processes=2"], jobs=(0, 3))
    try:
        assert (cluster._adaptive.minimum, cluster._adaptive.maximum) == (0, 6)
        time.sleep(1.5)  # more than one adaptive interval (1 s)
    finally:
        cluster.close()
    assert fake_sbatch.read_text() == ""


def test_without_sbatch_the_error_says_where_to_run(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no qsub
    with pytest.raises(ClusterError, match=r"^--cluster pbs: no `qsub` on PATH; run compute on a machine that submits PBS jobs$"):
        hpc.make_job_cluster("pbs", ["cores=1", "memory=1GB"])


def test_make_job_cluster_refuses_bad_bounds_before_building():
    with pytest.raises(ClusterError, match=r"^--jobs 3:1"):
        hpc.make_job_cluster("slurm", ["cores=1", "memory=1GB"], jobs=(3, 1))


# --------------------------------------------------------------------------- jobs that really run: sbatch stand-in starting the job script


@pytest.fixture
def running_sbatch(tmp_path, monkeypatch):
    """`sbatch` that runs the job script here in its own session (job id = its pid); `scancel` ends that session."""
    bin_dir, jobs = tmp_path / "bin", tmp_path / "jobs"
    bin_dir.mkdir()
    jobs.mkdir()
    # dask-jobqueue deletes the script as soon as sbatch returns: run a copy.
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\njob=$(mktemp {jobs}/job.XXXXXX)\ncp "$1" "$job"\n'
        'setsid sh "$job" > "$job.out" 2>&1 < /dev/null &\necho "Submitted batch job $!"\n'
    )
    (bin_dir / "scancel").write_text('#!/bin/sh\nkill -TERM -"$1" 2>/dev/null || true\n')
    for tool in ("sbatch", "scancel"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    yield
    # Whatever a failed test left running: end the sessions the stand-in started, by their ids.
    for pid in _session_ids(jobs):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def _session_ids(jobs) -> list[int]:
    import psutil

    scripts = {str(p) for p in jobs.glob("job.*") if not p.name.endswith(".out")}
    return [p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and p.info["cmdline"][-1] in scripts]


@pytest.mark.slow
def test_submitted_jobs_become_workers_that_compute(running_sbatch):
    from distributed import Client

    cluster = hpc.make_job_cluster("slurm", ["cores=1", "memory=1GB", "processes=1"], jobs=(1, 1))
    try:
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=60)
            assert client.submit(nnstd_of_a_seeded_pair, pure=False).result(timeout=60) == nnstd_of_a_seeded_pair()
    finally:
        cluster.close()


def nnstd_of_a_seeded_pair() -> list[float]:
    """Runs on the job's worker, which has nnstd-dist but not the tests folder: self-contained."""
    from nnstd_dist.kernel import nnstd

    rng = np.random.default_rng(5)
    a, b = ([rng.random((30, 20)) < 0.2, rng.random((20, 4)) < 0.5] for _ in range(2))
    return [float(d) for d in nnstd(b, a)]


@pytest.mark.slow
def test_compute_cli_runs_on_slurm_jobs(running_sbatch, tmp_path):
    from _populations import pair_distances, runs_population
    from click.testing import CliRunner

    from nnstd_dist.cli.main import cli
    from _populations import open_or_create
    from nnstd_dist.store import TopologyStore

    networks, records = runs_population(2, [0, 10, 20], seed=3)
    path = tmp_path / "topos.zarr"
    open_or_create(path, [m.shape for m in networks[0]]).append(list(zip(records, networks)))
    options = ["--cluster-option", "cores=1", "--cluster-option", "memory=1GB", "--cluster-option", "processes=1"]
    result = CliRunner().invoke(cli, ["compute", "--store", str(path), "--cluster", "slurm", "--jobs", "1:2", *options, "--quiet"])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(TopologyStore.open(path).read_distance(), pair_distances(networks))
