#!/bin/sh
# Build a stand-in for the official Python base image from Debian's own packages, for machines that
# can reach a Debian mirror but no image registry (the container test and CI use it):
#
#   scripts/stand-in-base.sh [TAG]      default TAG: localhost/nnstd-base:bookworm
#
# then `podman build --build-arg BASE_IMAGE=TAG ...`. An image already present under TAG is reused
# (NNSTD_BASE_REBUILD=1 builds it again). Needs root, debootstrap and podman. Its Python is Debian's
# /usr/bin/python3 (3.11), where the official image has /usr/local/bin/python3: the Dockerfile only
# calls `python3` from PATH, so it builds on both.
set -eu

tag=${1:-localhost/nnstd-base:bookworm}
if [ -z "${NNSTD_BASE_REBUILD:-}" ] && podman image exists "$tag"; then
    echo "$tag: already built, reused"
    exit 0
fi

# The mirror this machine's apt already uses (deb822 "URIs:" or one-line "deb URL"), else Debian's CDN.
mirror=$(sed -n -e 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)\/*$/\1/p' \
                -e 's/^deb[[:space:]]\{1,\}\(http[^[:space:]]*\/debian\)\/*[[:space:]].*/\1/p' \
             /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
# python3-venv brings ensurepip's wheels, so `python3 -m venv` makes a venv with pip in it.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" >/dev/null
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
# An imported tarball has no environment: set PATH as real base images do (the Dockerfile extends it).
tar -C "$rootfs" -c . \
    | podman import --quiet --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$tag" >/dev/null
echo "$tag: built from $mirror"
