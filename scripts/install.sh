#!/bin/sh
# Install nnstd-dist into a virtual environment: the README, CI and the Dockerfile all run this line.
#
#   scripts/install.sh [--no-editable] [VENV [EXTRAS]]
#
#   scripts/install.sh                                    .venv, editable, with the test extra
#   scripts/install.sh .venv ""                           .venv, editable, no extra
#   scripts/install.sh --no-editable /opt/nnstd-dist hpc  what the Docker image runs
#
# VENV is relative to the repository root. NNSTD_INSTALL_DRY_RUN=1 prints the commands instead.
set -eu

editable=-e
if [ "${1:-}" = "--no-editable" ]; then
    editable=
    shift
fi
venv=${1:-.venv}
extras=${2-test}
target=.
if [ -n "$extras" ]; then
    target=".[$extras]"
fi

run() {
    if [ -n "${NNSTD_INSTALL_DRY_RUN:-}" ]; then
        echo "$*"
    else
        "$@"
    fi
}

cd "$(dirname "$0")/.."
run python3 -m venv "$venv"
# $editable is unquoted on purpose: empty means no argument at all.
run "$venv/bin/pip" install -q $editable "$target"
