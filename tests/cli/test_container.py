"""The container path for real: the image built from the Dockerfile, docker-compose.yml run by podman-compose.

Needs podman (with runc and the two settings of docs/cluster.md), podman-compose (a test extra) and a
base image. The official Python image cannot be pulled on machines without a registry, so the image is
built on a stand-in made from Debian's packages by scripts/stand-in-base.sh (reused when it exists,
built afresh on a new machine such as CI's). Skips, saying why, where podman cannot run a container.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from nnstd_dist.sources.formats import load_set_network
from nnstd_dist.store.topology_store import TopologyStore

from _populations import done_tiles, pair_distances


ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
IMAGE = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["scheduler"]["image"]
BASE_IMAGE = os.environ.get("NNSTD_BASE_IMAGE", "localhost/nnstd-base:bookworm")
PROJECT = "nnstd-container-test"
DASHBOARD = "http://127.0.0.1:8787/status"  # published by the scheduler service on this host only
HOST_USER = (2345, 2345)  # NNSTD_UID, NNSTD_GID: neither root nor the image's own user (1000)
VENV_BIN = Path(sys.executable).parent
# The host's CA bundle, for pip inside the build on networks behind a TLS proxy (as on CI's machines).
CA_BUNDLE = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")


def _run(args, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _why(returncode: int, log: str, lines: int = 40) -> str:
    """A failed compose run's cause first -- every `Error:` line a container printed, which is what nnstd-dist says
    when it stops -- then the log's last lines (often only the workers' shutdown tracebacks)."""
    errors = [line for line in log.splitlines() if re.search(r"(^|\|)\s*Error: ", line)]  # a line of its own, after a container's prefix
    cause = "\n".join(errors) or "(no `Error:` line in the log)"
    return f"compose run failed with exit code {returncode}:\n{cause}\n--- the log's last {lines} lines ---\n{_tail(log, lines)}"


# --------------------------------------------------------------------------- engine and image


@pytest.fixture(scope="session")
def compose_client() -> str:
    """podman, able to run a container from the base image, and podman-compose; skips with the reason if not."""
    if shutil.which("podman") is None:
        pytest.skip("no container engine: podman is not installed (apt-get install podman runc; see docs/cluster.md)")
    client = shutil.which("podman-compose", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if client is None:
        pytest.skip("podman-compose is not installed (pip install -e '.[test]')")
    if _run(["podman", "image", "exists", BASE_IMAGE]).returncode != 0:
        if os.geteuid() != 0 or shutil.which("debootstrap") is None:
            pytest.skip(f"no base image {BASE_IMAGE}, and building one needs root and debootstrap")
        built = _run(["sh", ROOT / "scripts" / "stand-in-base.sh", BASE_IMAGE], timeout=900)
        assert built.returncode == 0, f"scripts/stand-in-base.sh failed:\n{_tail(built.stdout + built.stderr)}"
    probe = _run(["podman", "run", "--rm", BASE_IMAGE, "true"], timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run a container here (see docs/cluster.md for runc and containers.conf): "
                    f"{_tail(probe.stderr, 1)}")
    return client


@pytest.fixture(scope="session")
def image(compose_client) -> str:
    """The image docker-compose.yml names, built from the Dockerfile on the stand-in base."""
    args = ["podman", "build", "--quiet", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--tag", IMAGE]
    if CA_BUNDLE.is_file():
        args += ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "--build-arg", f"PIP_CERT={CA_BUNDLE}"]
    built = _run([*args, ROOT], timeout=1200)
    assert built.returncode == 0, f"podman build failed:\n{_tail(built.stdout + built.stderr)}"
    return IMAGE


# --------------------------------------------------------------------------- compose


class Compose:
    """docker-compose.yml under podman-compose, as project PROJECT, with /data mounted from ``data``."""

    def __init__(self, client: str, data: Path, ingest_source: str):
        self.client = client
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DASK_", "NNSTD_", "INGEST_"))}
        self.env.update(NNSTD_DATA=str(data), NNSTD_UID=str(HOST_USER[0]), NNSTD_GID=str(HOST_USER[1]),
                        NNSTD_WORKERS="2", INGEST_SOURCE=ingest_source)

    def args(self, *args) -> list[str]:
        return [self.client, "-p", PROJECT, "-f", str(COMPOSE_FILE), *args]

    def __call__(self, *args, timeout=600) -> subprocess.CompletedProcess:
        done = _run(self.args(*args), timeout=timeout, env=self.env)
        assert done.returncode == 0, f"podman-compose {' '.join(args)} failed:\n{_tail(done.stdout + done.stderr)}"
        return done

    def containers(self, service: str | None = None, running_only: bool = False) -> list[str]:
        filters = ["--filter", f"label=io.podman.compose.project={PROJECT}"]
        if service:
            filters += ["--filter", f"label=io.podman.compose.service={service}"]
        listed = _run(["podman", "ps", *([] if running_only else ["--all"]), *filters, "--format", "{{.Names}}"])
        return sorted(listed.stdout.split())

    def down(self) -> None:
        self("down", timeout=300)


def _wait_for_free_dashboard_port(timeout: float = 120) -> None:
    """The scheduler publishes 127.0.0.1:8787; a Dask cluster started on this host without a port can hold it a while."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", 8787))
                return
            except OSError:
                assert time.monotonic() < deadline, f"port 8787 on 127.0.0.1 stayed in use for {timeout} s: the scheduler cannot publish its dashboard"
        time.sleep(1)


PORT_TAKEN = "127.0.0.1:8787: bind: address already in use"


def _up(compose: Compose, data: Path, attempt):
    """``attempt()`` -> (returncode, output, ...), again (up to 3 times) while another process takes 8787 first.

    A Dask cluster that any other program on this host starts without a dashboard port takes 8787 if it
    is free, and can do so between the check for a free port and the scheduler's start.
    """
    for _ in range(3):
        result = attempt()
        if result[0] == 0 or PORT_TAKEN not in result[1]:
            return result
        compose.down()
        shutil.rmtree(data / "topos.zarr", ignore_errors=True)
        _wait_for_free_dashboard_port()
    return result


@contextlib.contextmanager
def compose_project(client: str, data: Path, ingest_source: str):
    compose = Compose(client, data, ingest_source)
    compose.down()  # what an interrupted earlier run left behind
    _wait_for_free_dashboard_port()
    try:
        yield compose
    finally:
        with contextlib.suppress(Exception):
            compose.down()


def _data_folder(tmp_path: Path) -> Path:
    """A data folder owned by the host user, as docs/cluster.md asks users to make it."""
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, *HOST_USER)
    return data


def _chown_tree(path: Path) -> None:
    for item in [path, *path.rglob("*")]:
        os.chown(item, *HOST_USER)


def _kernel_matrix(store: TopologyStore, topo: Path) -> np.ndarray:
    return pair_distances([load_set_network(topo / name) for name in store.names()])


def _dashboard_answers(timeout: float, still_running) -> bool:
    """Whether the dashboard page answers on this host before ``timeout`` s or before the run ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and still_running():
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(DASHBOARD, timeout=2) as response:
                return response.status == 200 and b"Dask" in response.read()
        time.sleep(0.2)
    return False


# --------------------------------------------------------------------------- the runs


@pytest.mark.container
@pytest.mark.slow
def test_compose_computes_the_example_as_the_kernel_does_and_writes_as_the_host_user(compose_client, image, tmp_path):
    data = _data_folder(tmp_path)
    shutil.copytree(ROOT / "topo", data / "topo")
    _chown_tree(data / "topo")
    log_path = tmp_path / "compose.log"
    with compose_project(compose_client, data, "/data/topo") as compose:
        def run():
            with open(log_path, "w") as log:
                # --exit-code-from stops the scheduler and workers when compute exits and returns its exit code.
                up = subprocess.Popen(compose.args("up", "--no-build", "--exit-code-from", "compute"),
                                      env=compose.env, stdout=log, stderr=subprocess.STDOUT, text=True)
                try:
                    dashboard = _dashboard_answers(timeout=300, still_running=lambda: up.poll() is None)
                    returncode = up.wait(timeout=600)
                finally:
                    if up.poll() is None:
                        up.kill()
            return returncode, log_path.read_text(), dashboard

        returncode, output, dashboard = _up(compose, data, run)
        assert returncode == 0, _why(returncode, output)
        assert dashboard, f"no dashboard at {DASHBOARD} while the cluster ran:\n{_tail(output)}"
        # The link compute prints opens on this host, not only inside the compose network.
        assert f"dashboard {DASHBOARD}" in output and "scheduler:8787" not in output
        assert "Traceback" not in output, _tail(output, 80)

        store = TopologyStore.open(data / "topos.zarr")
        got = store.read_distance()
        np.testing.assert_array_equal(got, _kernel_matrix(store, data / "topo"))
        assert np.count_nonzero(got) > 0

        # Everything the services wrote belongs to NNSTD_UID:NNSTD_GID, and they wrote nothing else.
        assert sorted(p.name for p in data.iterdir()) == ["topo", "topos.zarr"]
        owners = {(p.stat().st_uid, p.stat().st_gid) for p in [data, *(data / "topos.zarr").rglob("*")]}
        assert owners == {HOST_USER}

        compose.down()
        assert compose.containers() == []
    # down removed the containers, not the data: the store is there with the same matrix.
    np.testing.assert_array_equal(TopologyStore.open(data / "topos.zarr").read_distance(), got)


def _tiles_done(store_path: Path) -> int:
    """Tiles done: their records, read from the store's files (one per tile, or per tile row once packed)."""
    return done_tiles(store_path) if store_path.is_dir() else 0


@pytest.mark.container
@pytest.mark.slow
def test_compose_run_completes_the_same_matrix_when_a_worker_container_is_killed(compose_client, image, tmp_path):
    data = _data_folder(tmp_path)
    # 40 networks of the example's shape: 780 pairs in 6 tiles, ~20 s of work, so a worker dies mid-run.
    generated = _run([VENV_BIN / "nnstd-dist", "generate", data / "topo", "--networks", "40", "--seed", "7", "-q"])
    assert generated.returncode == 0, generated.stderr
    _chown_tree(data / "topo")
    store_path = data / "topos.zarr"
    with compose_project(compose_client, data, "/data/topo") as compose:
        # Detached: with --exit-code-from, the first container to stop (the killed worker) would stop them all.
        def run():
            # podman-compose waits without end for a dependency that never started (the scheduler, when
            # 8787 is taken): give it 240 s, then stop it and everything it started, and show its output.
            log_path = tmp_path / "up.log"
            with open(log_path, "w") as log:
                up = subprocess.Popen(compose.args("up", "--detach", "--no-build"), env=compose.env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
                try:
                    returncode = up.wait(timeout=240)
                except subprocess.TimeoutExpired:
                    os.killpg(up.pid, signal.SIGKILL)
                    returncode = up.wait()
            return returncode, log_path.read_text()

        returncode, output = _up(compose, data, run)
        assert returncode == 0, _why(returncode, output)
        (computer,) = compose.containers("compute")
        deadline = time.monotonic() + 600
        while _tiles_done(store_path) == 0:
            assert time.monotonic() < deadline, _run(["podman", "logs", computer]).stderr
            assert computer in compose.containers("compute", running_only=True), \
                f"compute ended before any tile was done:\n{_run(['podman', 'logs', computer]).stderr}"
            time.sleep(0.2)
        workers = compose.containers("worker", running_only=True)
        assert len(workers) == 2, workers
        done_before_kill = _tiles_done(store_path)
        assert _run(["podman", "kill", workers[0]]).returncode == 0

        exit_code = _run(["podman", "wait", computer], timeout=900).stdout.strip()
        logs = _run(["podman", "logs", computer])
        assert exit_code == "0", f"compute exited with {exit_code}:\n{_tail(logs.stdout + logs.stderr)}"
        assert compose.containers("worker", running_only=True) == workers[1:]  # the killed one stayed dead
        assert _tiles_done(store_path) > done_before_kill  # work was left when the worker died

        store = TopologyStore.open(store_path)
        got = store.read_distance()
        np.testing.assert_array_equal(got, _kernel_matrix(store, data / "topo"))
        compose.down()
        assert compose.containers() == []
    np.testing.assert_array_equal(TopologyStore.open(store_path).read_distance(), got)


def test_a_failed_compose_run_shows_its_error_line_first():
    """The cause, not `assert 2 == 0` and the workers' shutdown tracebacks (issue 29, item 7)."""
    log = "\n".join(
        ["compute_1    | Error: worker tcp://10.89.0.4:35000 cannot run the check (OSError: Timed out ...); it did not answer in time"]
        + ["worker_1     | Traceback (most recent call last):", "worker_1     |   raise CommClosedError(f'in {self}: {exc}')",
           "worker_1     | distributed.comm.core.CommClosedError: in <TCP (closed)>"] * 30
    )
    message = _why(2, log)
    assert message.splitlines()[:2] == [
        "compose run failed with exit code 2:",
        "compute_1    | Error: worker tcp://10.89.0.4:35000 cannot run the check (OSError: Timed out ...); it did not answer in time",
    ]
