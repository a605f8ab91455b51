"""HPC job-queue clusters (SLURM, PBS) through dask-jobqueue: settings = jobqueue.yaml, then KEY=VALUE overrides.

Every batch job runs ``processes`` Dask workers sharing ``cores`` and ``memory``; the cluster
scales adaptively between ``MIN`` and ``MAX`` jobs (``cluster.adapt(minimum_jobs, maximum_jobs)``).
A KEY is any key of Dask's ``jobqueue.<kind>`` config, with ``-`` or ``_``; its VALUE is typed
from that key: integers for cores/processes/job-cpu/death-timeout, a byte size for memory/job-mem,
a list for the list-valued keys (repeat the option to add items), a string otherwise.
dask-jobqueue is the optional ``hpc`` extra and is imported only here, only when a cluster is made.
"""

from __future__ import annotations

import importlib
import shutil
import signal
from collections.abc import Iterable, Mapping

from ..errors import ClusterError

__all__ = ["KINDS", "parse_jobs", "parse_cluster_options", "job_cluster", "make_job_cluster"]

KINDS = {"slurm": "SLURMCluster", "pbs": "PBSCluster"}
_INT_KEYS = {"cores", "processes", "job_cpu", "death_timeout"}
_BYTES_KEYS = {"memory", "job_mem"}
# Deprecated by dask-jobqueue in favour of the *_directives / *_prologue / worker_extra_args keys.
_DEPRECATED_KEYS = {"extra", "env_extra", "job_extra"}
_EXAMPLE = {"cores": "cores=8", "memory": "memory=16GB"}
# jobqueue.yaml's `name` is the batch job's name; the cluster classes take it as job_name (their name= names the Dask cluster).
_KWARGS = {"name": "job_name"}


def parse_jobs(text: str) -> tuple[int, int]:
    """``"MIN:MAX"`` (or ``"N"`` for N:N) -> (MIN, MAX) job counts for adaptive scaling."""
    low, _, high = str(text).partition(":")
    try:
        jobs = (int(low), int(high or low))
    except ValueError:
        raise ClusterError(f"`jobs` {text!r}: expected MIN:MAX job counts, e.g. 1:10") from None
    _check_jobs(jobs, repr(text))
    return jobs


def _check_jobs(jobs: tuple[int, int], shown: str) -> None:
    if not 0 <= jobs[0] <= jobs[1] or jobs[1] < 1:
        raise ClusterError(f"`jobs` {shown}: need 0 <= MIN <= MAX and MAX >= 1")


def _jobqueue(kind: str):
    """The dask_jobqueue cluster class for ``kind``; imported here so the base install never needs it."""
    if kind not in KINDS:
        raise ClusterError(f"`job_queue` {kind!r}: expected one of {', '.join(KINDS)}")
    try:
        module = import_dask_jobqueue()
    except ImportError:
        raise ClusterError(f"`job_queue` {kind} needs dask-jobqueue: pip install dask-jobqueue, or pip install -e '.[hpc]' in the nnstd-dist checkout") from None
    return getattr(module, KINDS[kind])


def import_dask_jobqueue():
    """``import dask_jobqueue`` with Ctrl-C left alone (raises ImportError if it is not installed).

    Importing it (its runner module) sets a SIGINT handler that calls sys.exit(): Ctrl-C would end a run as a
    success, exit code 0 and no word of the stop, and in pytest it fails the running test and the run goes
    on. The handler in place before is put back; the module is then cached, so no later import sets it again.
    """
    ctrl_c = signal.getsignal(signal.SIGINT)
    try:
        return importlib.import_module("dask_jobqueue")
    finally:
        if ctrl_c is not None and signal.getsignal(signal.SIGINT) != ctrl_c:
            signal.signal(signal.SIGINT, ctrl_c)


def _config_defaults(kind: str) -> dict[str, object]:
    """The ``jobqueue.<kind>`` settings now in effect (package defaults merged with jobqueue.yaml), keys with ``_``."""
    import dask.config  # dask is a hard dependency; imported late like the rest of the cluster code

    settings = dask.config.get(f"jobqueue.{kind}", default={}) or {}
    return {key.replace("-", "_"): value for key, value in settings.items()}


def _typed(kind: str, key: str, value: str, default: object):
    """One VALUE converted to what dask-jobqueue expects for ``key``."""
    if key in _INT_KEYS or (isinstance(default, int) and not isinstance(default, bool)):
        try:
            return int(value)
        except ValueError:
            raise ClusterError(f"`job_options` {key}={value}: {key} must be an integer") from None
    if key in _BYTES_KEYS:
        from dask.utils import parse_bytes

        try:
            parse_bytes(value)
        except ValueError:
            raise ClusterError(f"`job_options` {key}={value}: not a memory size such as 16GB or 3.5GiB") from None
        return value  # dask-jobqueue formats the string itself (e.g. SLURM --mem)
    if isinstance(default, bool):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ClusterError(f"`job_options` {key}={value}: expected true or false")
        return value.lower() in ("true", "1", "yes")
    if isinstance(default, Mapping):
        raise ClusterError(f"`job_options` {key}: a mapping; set jobqueue.{kind}.{key.replace('_', '-')} in jobqueue.yaml instead")
    return value


def _pairs(options: Mapping[str, object] | Iterable[str]) -> list[tuple[str, str]]:
    """``["KEY=VALUE", ...]`` or ``{KEY: VALUE or [VALUES]}`` -> [(KEY, VALUE), ...] in order."""
    if isinstance(options, Mapping):
        return [(k, str(v)) for k, vs in options.items() for v in (vs if isinstance(vs, (list, tuple)) else [vs])]
    pairs = []
    for item in options:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ClusterError(f"`job_options` {item!r}: expected KEY=VALUE, e.g. memory=16GB")
        pairs.append((key.strip(), value))
    return pairs


def parse_cluster_options(kind: str, options: Mapping[str, object] | Iterable[str] = ()) -> dict[str, object]:
    """``KEY=VALUE`` overrides -> keyword arguments for the ``kind`` cluster class, checked against its config keys.

    Keys absent from Dask's ``jobqueue.<kind>`` config are refused (a typo would otherwise reach
    sbatch/qsub, or be silently ignored). List-valued keys collect every repetition in order.
    """
    _jobqueue(kind)  # registers dask-jobqueue's defaults in dask.config
    defaults = _config_defaults(kind)
    known = sorted(set(defaults) - _DEPRECATED_KEYS)
    kwargs: dict[str, object] = {}
    for raw_key, value in _pairs(options):
        key = raw_key.replace("-", "_")
        if key not in known:
            raise ClusterError(f"`job_options` {raw_key}: not a jobqueue.{kind} setting; known: {', '.join(known)}")
        if isinstance(defaults[key], list):
            kwargs.setdefault(key, []).append(value)
        else:
            kwargs[key] = _typed(kind, key, value, defaults[key])
    return kwargs


def job_cluster(kind: str, options: Mapping[str, object] | Iterable[str] = ()):
    """A dask-jobqueue cluster with no job submitted yet: its scheduler runs in this process."""
    cluster_class = _jobqueue(kind)
    kwargs = parse_cluster_options(kind, options)
    settings = {**_config_defaults(kind), **kwargs}
    missing = [key for key in ("cores", "memory") if settings.get(key) is None]
    if missing:
        raise ClusterError(
            f"`job_queue` {kind}: no {' or '.join(missing)} per job; set jobqueue.{kind}.{'/'.join(missing)} in jobqueue.yaml "
            f"or pass `job_options` {' `job_options` '.join(_EXAMPLE[key] for key in missing)}"
        )
    try:
        # cores and memory passed explicitly: dask-jobqueue re-reads its config for missing ones when it scales or closes.
        kwargs = {_KWARGS.get(key, key): value for key, value in kwargs.items()}
        return cluster_class(**{**kwargs, "cores": settings["cores"], "memory": settings["memory"]})
    except (TypeError, ValueError) as exc:
        raise ClusterError(f"`job_queue` {kind}: {str(exc).strip().splitlines()[0]}") from None


def make_job_cluster(kind: str, options: Mapping[str, object] | Iterable[str] = (), jobs: tuple[int, int] = (1, 1)):
    """``job_cluster`` scaled adaptively between ``jobs[0]`` and ``jobs[1]`` batch jobs; close it when done."""
    minimum, maximum = jobs
    _check_jobs(jobs, f"{minimum}:{maximum}")
    submit = _jobqueue(kind).job_cls.submit_command
    if shutil.which(submit) is None:
        # Adaptive scaling would only log the failed submissions while compute waited for workers forever.
        raise ClusterError(f"`job_queue` {kind}: no `{submit}` on PATH; run compute on a machine that submits {kind.upper()} jobs")
    cluster = job_cluster(kind, options)
    cluster.adapt(minimum_jobs=minimum, maximum_jobs=maximum)
    return cluster
