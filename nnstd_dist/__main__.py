"""`python -m nnstd_dist` runs the same CLI as the `nnstd-dist` script."""

from nnstd_dist.cli.main import main

main()
