# The nnstd-dist image: docker-compose.yml runs the scheduler, the workers and the compute client
# from it, so every process has the same versions (compute checks this before its first task).
# BASE_IMAGE: any Debian-like image with python3 (>= 3.11, with venv) on PATH; the default is the official
# one users pull. Where no registry is reachable, scripts/stand-in-base.sh builds one from Debian's packages.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/nnstd-dist/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/install.sh scripts/install.sh
COPY nnstd_dist nnstd_dist
COPY cli cli
# The same script as the README's install line, into a virtual environment outside the source tree.
# PIP_CERT (optional): a CA bundle for pip, for networks behind a TLS proxy; mount the file with
# --volume and pass its path with --build-arg. A build argument, so it is not kept in the image.
ARG PIP_CERT
RUN scripts/install.sh --no-editable /opt/nnstd-dist hpc
# The fast solver's numba code, compiled once here (~20 s of CPU) into a cache every container reuses, with the
# marker that tells nnstd-dist it is compiled (so no container says "Compiling the fast solver").
ENV NUMBA_CACHE_DIR=/opt/nnstd-dist/numba-cache
RUN python -c "from nnstd_dist.warmup import compile_fast_solver; compile_fast_solver(quiet=True)" \
    && chown -R 1000:1000 /opt/nnstd-dist/numba-cache

# Run as the unprivileged user nnstd (uid 1000, numeric so that runAsNonRoot can check it);
# /data is where docker-compose.yml mounts the shared folder.
RUN useradd --create-home --uid 1000 --user-group nnstd \
    && mkdir /data \
    && chown nnstd:nnstd /data
USER 1000:1000
WORKDIR /data

CMD ["nnstd-dist", "--help"]
