"""All pairwise distances of a store as Dask tasks: the plan, the tile task, clusters, the run loop. The only subpackage that imports dask."""
