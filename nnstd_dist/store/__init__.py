"""The topology store (zarr v3): population, results, integrity. The only subpackage that imports zarr."""
