"""The worker gate: a WorkerPlugin that refuses, before its first task, any worker whose environment differs from the client's."""

from __future__ import annotations

import contextlib
import logging
import os
import time

from distributed import Client, WorkerPlugin

from .environment import compare, environment_report

__all__ = ["EnvironmentGate"]

log = logging.getLogger(__name__)


class EnvironmentGate(WorkerPlugin):
    """Checks every worker, including those joining later (adaptive scaling), before it runs a task; a mismatched one is closed.

    A worker sets its plugins up before it reads any message from the scheduler, so a task sent to it
    meanwhile waits. A worker that differs from the client (``environment.compare``: versions, store
    access) is paused, removed from the scheduler as an expected departure (its waiting tasks go to
    the other workers and count as no failure) and closed with its nanny, which ends its batch job
    and frees the allocation. It is named on the client through the scheduler's event log.
    """

    name = "nnstd-dist-environment-gate"
    topic = "nnstd-dist-refused"

    def __init__(self, store_path: str, refused: dict[str, str] | None = None):
        self.store_path = store_path
        self.client_report = environment_report(None)
        self.refused = {} if refused is None else refused  # filled on the client, never sent to workers

    def __getstate__(self):
        return {"store_path": self.store_path, "client_report": self.client_report, "refused": {}}

    async def setup(self, worker) -> None:
        from distributed.core import Status

        report = environment_report(self.store_path)
        # compare() names the worker in front of each problem; the message below names it once.
        problems = [p.removeprefix(f"worker {worker.address} ").removeprefix(f"{worker.address} ")
                    for p in compare(self.client_report, {worker.address: report}, need_write=True)]
        if not problems:
            return
        worker.status = Status.paused  # from here on it starts no task
        job = os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID")  # what the user can look up, or scancel
        where = f"on {report['hostname']}" + (f", batch job {job}" if job else "")
        worker.log_event(self.topic, {"worker": worker.address, "where": where, "problems": problems})
        await worker.scheduler.unregister(address=worker.address, stimulus_id=f"nnstd-dist-refused-{time.time()}", expected=True, close=False)
        worker.loop.add_callback(worker.close, nanny=True, reason="nnstd-dist: environment differs from the client's")

    @contextlib.contextmanager
    def installed(self, client: Client):
        """Registered on every worker present and to come, for the duration of the block; refusals logged and kept."""
        def on_refused(event) -> None:
            _, message = event
            why = "; ".join(message["problems"])
            self.refused[message["worker"]] = why
            log.warning("refused worker %s %s: %s; the run goes on with the others", message["worker"], message["where"], why)

        client.subscribe_topic(self.topic, on_refused)
        client.register_plugin(self, name=self.name)
        try:
            yield self
        finally:
            with contextlib.suppress(Exception):  # a lost cluster has no plugin left to remove
                client.unregister_worker_plugin(self.name)
            client.unsubscribe_topic(self.topic)
