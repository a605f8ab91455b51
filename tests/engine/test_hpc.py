"""dask-jobqueue clusters: typed --cluster-option values, jobqueue config defaults, and the job scripts they give.

These need no SLURM or PBS: a job-queue cluster can be built and its job script rendered without
sbatch/qsub, as long as no job is submitted. Jobs that SLURM really runs are in test_slurm.py (a
single-node SLURM started by the tests); PBS is tested through its job script only.
"""

from __future__ import annotations

import sys

import dask.config
import pytest

from nnstd_dist.engine import hpc
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
    with pytest.raises(ClusterError, match=rf"^`jobs` '{text}'"):
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
        ("cores=eight", r"^`job_options` cores=eight: cores must be an integer$"),
        ("memory=lots", r"^`job_options` memory=lots: not a memory size"),
        ("quue=short", r"^`job_options` quue: not a jobqueue.slurm setting; known: account, cores, .*, walltime"),
        ("job-extra=--x", r"^`job_options` job-extra: not a jobqueue.slurm setting"),  # deprecated by dask-jobqueue
        ("scheduler-options=port:0", r"^`job_options` scheduler_options: a mapping; set jobqueue.slurm.scheduler-options in jobqueue.yaml"),
        ("cores", r"^`job_options` 'cores': expected KEY=VALUE"),
    ],
    ids=["bad-int", "bad-memory", "typo", "deprecated", "mapping", "no-value"],
)
def test_bad_options_are_refused_on_one_line(option, message):
    with pytest.raises(ClusterError, match=message):
        hpc.parse_cluster_options("slurm", [option])


def test_unknown_kind_is_refused():
    with pytest.raises(ClusterError, match=r"^`job_queue` 'sge': expected one of slurm, pbs$"):
        hpc.job_cluster("sge", [])


def test_without_the_hpc_extra_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if dask-jobqueue were not installed
    with pytest.raises(ClusterError, match=r"^`job_queue` slurm needs dask-jobqueue: pip install dask-jobqueue, or pip install -e '\.\[hpc\]' in the nnstd-dist checkout$"):
        hpc.job_cluster("slurm", ["cores=1", "memory=1GB"])


@pytest.mark.parametrize("options, missing", [([], "cores or memory"), (["cores=4"], "memory"), (["memory=4GB"], "cores")],
                         ids=["both", "memory", "cores"])
def test_a_job_needs_cores_and_memory(options, missing):
    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        with pytest.raises(ClusterError, match=rf"^`job_queue` slurm: no {missing} per job; set jobqueue.slurm"):
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


def test_name_is_the_batch_jobs_name_as_in_jobqueue_yaml(job_cluster):
    assert "#SBATCH -J nnstd-run" in job_cluster("slurm", ["cores=1", "memory=1GB", "name=nnstd-run"]).job_script().splitlines()


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


def test_without_sbatch_the_error_says_where_to_run(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no qsub
    with pytest.raises(ClusterError, match=r"^`job_queue` pbs: no `qsub` on PATH; run compute on a machine that submits PBS jobs$"):
        hpc.make_job_cluster("pbs", ["cores=1", "memory=1GB"])


def test_make_job_cluster_refuses_bad_bounds_before_building():
    with pytest.raises(ClusterError, match=r"^`jobs` 3:1"):
        hpc.make_job_cluster("slurm", ["cores=1", "memory=1GB"], jobs=(3, 1))


def test_importing_dask_jobqueue_leaves_ctrl_c_alone(monkeypatch):
    # dask_jobqueue sets, when imported, a SIGINT handler that calls sys.exit(): a Ctrl-C would end
    # `compute --cluster slurm` as a success. Imported afresh here, as in a new `compute` process.
    import signal

    for name in [m for m in sys.modules if m == "dask_jobqueue" or m.startswith("dask_jobqueue.")]:
        monkeypatch.delitem(sys.modules, name)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cls = hpc._jobqueue("slurm")
        assert cls.__name__ == "SLURMCluster"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
