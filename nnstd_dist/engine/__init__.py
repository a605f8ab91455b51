"""The compute engine: all pairwise distances of a store as Dask tasks (plan, tile task, clusters, run loop). The only subpackage that imports dask.

The data's path: ``plan`` cuts the pair space into tiles (``nnstd_dist.tiles``) and sizes them; ``run``
submits one ``tasks.compute_tile`` per remaining tile to the Client that ``connect`` gives (a LocalCluster,
a scheduler, ``hpc``'s batch jobs, or the active Client), behind ``gate``'s environment check; ``progress``
reports; ``interrupts`` takes Ctrl-C and SIGTERM where it is safe.
"""

from .connect import ClusterSpec, connect
from .plan import Plan, make_plan
from .progress import Progress, RunStats
from .run import compute, plan_store, run_plan

__all__ = ["ClusterSpec", "Plan", "Progress", "RunStats", "compute", "connect", "make_plan", "plan_store", "run_plan"]
