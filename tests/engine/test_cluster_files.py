"""docker-compose.yml, the Dockerfile, scripts/install.sh and the CLI agree, and the compose services really compute.

No Docker engine runs here, so the compose file is run the next best way: each service's command
as a local process, the service name ``scheduler`` resolved to 127.0.0.1, its ports moved to free
ones and ``/data`` mapped to a temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from nnstd_dist.cli.main import COMMANDS, cli
from nnstd_dist.sources.formats import load_set_network

from _populations import pair_distances

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SCHEDULER_PORT, DASHBOARD_PORT, DATA = 8786, 8787, "/data"
STORE = f"{DATA}/topos.zarr"
VENV_BIN = Path(sys.executable).parent  # where `nnstd-dist` and `dask` are installed for this run


# --------------------------------------------------------------------------- reading the files


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ``$$`` -> ``$``, ``${VAR:-default}``, ``${VAR}``."""
    def substitute(match):
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        return env.get(name) or (default if default is not None else "")

    return re.sub(r"\$\$|\$\{(\w+)(?::-([^}]*))?\}", substitute, value)


def command(service: str, env: dict[str, str] | None = None) -> list[str]:
    """A service's command as an argument list, variables substituted (exec form or a plain string)."""
    raw = SERVICES[service]["command"]
    raw = shlex.split(raw) if isinstance(raw, str) else raw
    return [interpolate(str(arg), env or {}) for arg in raw]


def cli_invocations(text: str) -> list[tuple[str, list[str]]]:
    """Every ``nnstd-dist COMMAND ARGS...`` in shell text: (command, args up to the next ; && || | or newline)."""
    found = []
    for line in text.splitlines():
        lexer = shlex.shlex(line.split(" #")[0], posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        for i, token in enumerate(tokens):
            if Path(token).name == "nnstd-dist" and i + 1 < len(tokens):
                args = []
                for arg in tokens[i + 2 :]:
                    if arg in (";", "&&", "||", "|", "&", ")"):
                        break
                    args.append(arg)
                found.append((tokens[i + 1], args))
    return found


def install_commands(*args: str) -> list[list[str]]:
    """What ``scripts/install.sh ARGS`` runs, from its dry-run mode."""
    out = subprocess.run(["sh", str(ROOT / "scripts" / "install.sh"), *args], env={**os.environ, "NNSTD_INSTALL_DRY_RUN": "1"},
                         capture_output=True, text=True, check=True).stdout
    return [shlex.split(line) for line in out.splitlines()]


def shell_commands(line: str) -> list[list[str]]:
    return [shlex.split(part) for part in line.split("&&")]


def test_command(path: Path) -> list[list[str]]:
    """The commands of the line in ``path`` that installs and runs pytest (the README's test line, .ci/run's last)."""
    lines = [line for line in path.read_text().splitlines() if "pytest" in line and ("pip install" in line or "install.sh" in line)]
    assert lines, f"{path.name}: no install-and-test line found"
    return shell_commands(lines[-1])


test_command.__test__ = False  # a helper, not a test


# --------------------------------------------------------------------------- the files agree


def test_scheduler_listens_on_8786_and_shows_its_dashboard_on_localhost_only():
    scheduler = SERVICES["scheduler"]
    args = command("scheduler")
    assert args[:2] == ["dask", "scheduler"]
    assert args[args.index("--port") + 1] == str(SCHEDULER_PORT)
    assert args[args.index("--dashboard-address") + 1] == f":{DASHBOARD_PORT}"
    assert [str(p) for p in scheduler.get("expose", [])] == [str(SCHEDULER_PORT)]
    assert scheduler["ports"] == [f"127.0.0.1:{DASHBOARD_PORT}:{DASHBOARD_PORT}"]  # never on all interfaces
    assert f":{DASHBOARD_PORT}/health" in " ".join(scheduler["healthcheck"]["test"])


def test_workers_and_compute_reach_the_scheduler_by_service_name():
    address = f"tcp://scheduler:{SCHEDULER_PORT}"
    assert command("worker")[:3] == ["dask", "worker", address]
    assert [args[args.index("--scheduler") + 1] for name, args in cli_invocations(command("compute")[-1]) if name == "compute"] == [address]


def test_workers_can_be_scaled():
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "ports" not in worker  # more than one container needs neither
    assert worker["scale"] == "${NNSTD_WORKERS:-2}"  # a setting, so that podman-compose's down finds them all


def test_no_service_waits_for_a_health_check_that_podman_never_runs():
    # Podman runs health checks from systemd timers: without systemd a container never turns healthy.
    for name, spec in SERVICES.items():
        depends = spec.get("depends_on", [])
        assert isinstance(depends, list) or all(d.get("condition") != "service_healthy" for d in depends.values()), name
    script = command("compute")[-1]
    assert script.index(f"http://scheduler:{DASHBOARD_PORT}/health") < script.index("nnstd-dist ingest")  # it waits itself


def test_compute_prints_the_dashboard_link_this_host_can_open():
    assert SERVICES["compute"]["environment"]["DASK_DISTRIBUTED__DASHBOARD__LINK"] == f"http://127.0.0.1:{DASHBOARD_PORT}/status"
    args = command("worker")
    assert args[args.index("--nthreads") + 1] == "1"
    assert "--memory-limit" in args


@pytest.mark.parametrize("service", sorted(SERVICES), ids=str)
def test_every_service_mounts_the_same_data_folder_and_runs_the_image(service):
    spec = SERVICES[service]
    targets = [interpolate(v, {}).split(":")[1] if isinstance(v, str) else v["target"] for v in spec["volumes"]]
    assert targets == [DATA]
    assert spec["build"] == "." and spec["image"] == SERVICES["scheduler"]["image"]
    assert not str(spec.get("user", "1000")).startswith(("0", "root"))


def test_compute_service_uses_the_store_on_the_data_folder():
    invocations = cli_invocations(command("compute")[-1])
    assert [name for name, _ in invocations] == ["ingest", "compute"]
    for _, args in invocations:
        assert args[args.index("--store") + 1] == STORE


def _options(name: str) -> set[str]:
    click_command = cli.get_command(None, name)
    assert click_command is not None, f"`nnstd-dist {name}` is used by the cluster files but not built (cli/{COMMANDS.get(name, name)}.py)"
    return {opt for param in click_command.params for opt in [*param.opts, *param.secondary_opts]}


def _documented_invocations():
    compose_text = "\n".join(" ".join(command(s)) for s in SERVICES)
    docs = (ROOT / "docs" / "cluster.md").read_text()
    shell_blocks = "\n".join(re.findall(r"```(?:bash|sh)\n(.*?)```", docs, re.S)).replace("\\\n", " ")
    return cli_invocations(compose_text) + cli_invocations(shell_blocks)


def test_cli_commands_and_options_in_compose_and_docs_exist():
    invocations = _documented_invocations()
    assert {"ingest", "compute"} <= {name for name, _ in invocations}
    for name, args in invocations:
        assert name in COMMANDS, f"nnstd-dist {name}: no such command (cli/main.py COMMANDS)"
        unknown = {a.split("=")[0] for a in args if a.startswith("-") and not a[1:2].isdigit()} - _options(name) - {"--help"}
        assert not unknown, f"nnstd-dist {name}: no option(s) {sorted(unknown)}, used in docker-compose.yml or docs/cluster.md"


@pytest.mark.parametrize("service, module", [("scheduler", "dask_scheduler"), ("worker", "dask_worker")], ids=str)
def test_dask_options_in_compose_exist(service, module):
    import importlib

    main = importlib.import_module(f"distributed.cli.{module}").main
    known = {opt for param in main.params for opt in [*param.opts, *param.secondary_opts]}
    assert {a for a in command(service) if a.startswith("--")} <= known


def test_dockerfile_pins_a_python_base_and_runs_as_a_user_in_data():
    # FROM ${BASE_IMAGE}: the official image by default, a stand-in where no registry is reachable.
    assert re.search(r"^FROM\s+(\S+)", DOCKERFILE, re.M).group(1) == "${BASE_IMAGE}"
    base = re.search(r"^ARG\s+BASE_IMAGE=(\S+)", DOCKERFILE, re.M).group(1)
    assert re.fullmatch(r"python:3\.(1[1-9])\.\d+-slim-\w+", base), f"{base}: pin a full Python >= 3.11 version"
    user = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.M)[-1]
    assert user.split(":")[0] not in ("0", "root")
    assert re.findall(r"^WORKDIR\s+(\S+)", DOCKERFILE, re.M)[-1] == DATA


def test_dockerfile_installs_with_the_install_script_into_its_path():
    runs = [shlex.split(line) for line in re.findall(r"^RUN\s+(scripts/install\.sh.*)$", DOCKERFILE, re.M)]
    assert len(runs) == 1, "the Dockerfile must install with scripts/install.sh, exactly once"
    make_venv, (pip, *pip_args) = install_commands(*runs[0][1:])
    assert make_venv[:3] == ["python3", "-m", "venv"]
    venv = Path(make_venv[3])
    assert Path(pip) == venv / "bin" / "pip" and f"PATH={venv}/bin:" in DOCKERFILE
    assert "-e" not in pip_args  # the image holds no source tree to edit
    copied = {src for line in re.findall(r"^COPY\s+(.+)$", DOCKERFILE, re.M) for src in shlex.split(line)[:-1]}
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert copied <= allowed, f"COPY sources excluded by .dockerignore: {sorted(copied - allowed)}"


@pytest.mark.parametrize("path", ["README.md", ".ci/run"], ids=str)
def test_readme_and_ci_install_as_the_script_does(path):
    *install, run_tests = test_command(ROOT / path)
    assert run_tests[-3:] == ["-m", "pytest", "-q"]
    # Either the script itself, or the very commands it runs by default.
    assert install in ([["scripts/install.sh"]], [["./scripts/install.sh"]], install_commands())


def test_install_script_defaults_are_the_readme_line():
    assert install_commands() == [["python3", "-m", "venv", ".venv"], [".venv/bin/pip", "install", "-q", "-e", ".[test]"]]
    assert install_commands("--no-editable", "/opt/x", "") == [["python3", "-m", "venv", "/opt/x"], ["/opt/x/bin/pip", "install", "-q", "."]]


# --------------------------------------------------------------------------- the services, run as local processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCompose:
    """Runs compose services as local processes: service host names -> 127.0.0.1, ports -> free ports, /data -> a folder."""

    def __init__(self, data: Path, logs: Path):
        self.data, self.logs = data, logs
        self.scheduler_port, self.dashboard_port = _free_port(), _free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
        self.env["PATH"] = f"{VENV_BIN}{os.pathsep}{self.env.get('PATH', '')}"
        self.processes: list[subprocess.Popen] = []

    def localize(self, arg: str) -> str:
        arg = arg.replace(f"scheduler:{SCHEDULER_PORT}", f"127.0.0.1:{self.scheduler_port}")
        arg = arg.replace(f"localhost:{DASHBOARD_PORT}", f"localhost:{self.dashboard_port}")
        arg = arg.replace(f"scheduler:{DASHBOARD_PORT}", f"127.0.0.1:{self.dashboard_port}")
        arg = {str(SCHEDULER_PORT): str(self.scheduler_port), f":{DASHBOARD_PORT}": f":{self.dashboard_port}"}.get(arg, arg)
        arg = re.sub(rf"(?<![\w/]){DATA}(?=/|$|\s|\")", str(self.data), arg)
        return sys.executable if arg == "python" else arg

    def service_env(self, service: str, overrides: dict[str, str]) -> dict[str, str]:
        env = {**self.env, **overrides}
        for key, value in (SERVICES[service].get("environment") or {}).items():
            env[key] = self.localize(interpolate(str(value), env))
        return env

    def start(self, service: str, **overrides) -> subprocess.Popen:
        log = open(self.logs / f"{service}-{len(self.processes)}.log", "w")
        args = [self.localize(a) for a in command(service, {**self.env, **overrides})]
        # A new session per service, so that stopping it also stops the worker a nanny spawned.
        process = subprocess.Popen(args, env=self.service_env(service, overrides), stdout=log, stderr=subprocess.STDOUT,
                                   cwd=self.data, start_new_session=True)
        self.processes.append(process)
        return process

    def run(self, service: str, timeout: float, **overrides) -> subprocess.CompletedProcess:
        args = [self.localize(a) for a in command(service, {**self.env, **overrides})]
        return subprocess.run(args, env=self.service_env(service, overrides), capture_output=True, text=True,
                              cwd=self.data, timeout=timeout)

    def wait_healthy(self, service: str, timeout: float) -> None:
        """Run the service's healthcheck (localized) until it passes, as compose's depends_on condition does."""
        test = [self.localize(a) for a in SERVICES[service]["healthcheck"]["test"]]
        assert test[0] == "CMD"
        deadline = time.monotonic() + timeout
        while subprocess.run(test[1:], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, f"{service} not healthy after {timeout} s:\n{self.log_text()}"
            time.sleep(0.3)

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.logs.glob("*.log")))

    def stop(self) -> None:
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_for_workers(address: str, n: int, timeout: float) -> None:
    from distributed import Client

    with Client(address, timeout="20s") as client:
        client.wait_for_workers(n, timeout=timeout)


@pytest.mark.slow
def test_compose_services_compute_the_same_matrix_as_a_local_run(tmp_path):
    # Not a skip: the compose file names these commands, so their absence is a failure.
    for name in ("ingest", "compute"):
        _options(name)
    from _populations import write_population
    from nnstd_dist.store.topology_store import TopologyStore

    data, logs = tmp_path / "data", tmp_path / "logs"
    data.mkdir()
    logs.mkdir()
    # 34 networks: compute picks tiles of 16 for 2 workers, so 6 tiles, off-diagonal ones included, on both workers.
    population = write_population(data / "topo", layers=(24, 20, 16, 4), density=0.2, n_networks=34, rewire=0.1, seed=11)

    compose = LocalCompose(data, logs)
    try:
        compose.start("scheduler")
        compose.wait_healthy("scheduler", timeout=60)
        compose.start("worker")
        compose.start("worker")  # docker compose up --scale worker=2
        _wait_for_workers(f"tcp://127.0.0.1:{compose.scheduler_port}", 2, timeout=60)
        done = compose.run("compute", timeout=240, INGEST_SOURCE=f"{DATA}/topo")
    finally:
        compose.stop()
    assert done.returncode == 0, f"compute service failed:\n{done.stdout}\n{done.stderr}\n{compose.log_text()}"

    store = TopologyStore.open(data / "topos.zarr")
    assert sorted(store.names()) == population.names
    got = store.read_distance()
    expected = pair_distances([load_set_network(data / "topo" / name) for name in store.names()])
    np.testing.assert_array_equal(got, expected)
    assert np.count_nonzero(expected) > 0  # distinct networks: the comparison is not trivially all zeros
