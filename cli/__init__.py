"""Thin click commands: parse, call the library, report; installed as `nnstd_dist.cli`."""
