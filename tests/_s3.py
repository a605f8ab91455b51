"""A real S3 endpoint for the tests: moto's server (pip ``moto[server]``) on a free port of 127.0.0.1, its request log kept.

A test module takes the fixtures by importing them (the tests run with ``pythonpath = ["tests"]``)::

    from _s3 import s3_server, s3_env, s3_bucket  # noqa: F401

``s3_server`` (session) is the running server, ``s3_env`` (function) sets the AWS_* variables that make a client with no
arguments (``s3fs.S3FileSystem()``, ``fsspec``/zarr ``s3://`` URLs, boto3) talk to it, and ``s3_bucket`` (function) is a
fresh bucket's name. ``s3_auth_server`` is a second server that checks credentials (see ``S3Server.start``).

Counting requests (the benchmark of requests per tile)::

    mark = server.mark()
    ...  # the work
    server.requests(since=mark)  # Counter({"PUT": 3, "GET": 2, "HEAD": 1, "LIST": 1})

Each request is one werkzeug log line, written before the response is sent: once a client has its answer, the line is in
the log. ``LIST`` is a GET on a bucket (no key) whose query has ``list-type=2`` or ``prefix=``; any other GET is ``GET``.
CreateBucket is a ``PUT``, DeleteObjects and multipart uploads ``POST``s. The readiness probes (``/moto-api/``) are not counted.

Findings this module was written against (moto 5.2, s3fs/fsspec 2026.9, botocore 1.43, zarr 3.1):

- ``AWS_ENDPOINT_URL`` is honoured by s3fs/aiobotocore: ``s3fs.S3FileSystem()`` with no arguments talks to the server.
- A create-only write of an existing key (``pipe_file(path, data, mode="create")``: PUT with ``If-None-Match: *``, moto
  answers 412 PreconditionFailed) raises ``FileExistsError``; fsspec's memory filesystem raises ``FileExistsError`` too.
- Missing bucket: ``FileNotFoundError`` (read and write). Bad credentials (server started with ``auth=True`` only; moto
  accepts anything by default): ``PermissionError``. Endpoint not reachable: botocore's ``EndpointConnectionError``, which
  is *not* an ``OSError``, after ~5-12 s of botocore's retries unless ``FAIL_FAST`` options are given.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"

# s3fs storage options that make an unreachable endpoint fail in well under a second instead of after botocore's retries
# (5-12 s measured against a closed port): one attempt, a 1 s connect timeout.
FAIL_FAST = {"config_kwargs": {"retries": {"total_max_attempts": 1, "mode": "standard"}, "connect_timeout": 1}}

# The variables a client process needs; s3_env removes these others, which would override them or send the client looking
# for credentials elsewhere.
_CLEARED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3",
            "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE")

# "127.0.0.1 - - [06/Dec/2026 06:57:36] "PUT /bucket/key HTTP/1.1" 200 -", coloured with ANSI codes by werkzeug.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_REQUEST = re.compile(r'\] "([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) ')
_INFRA = "/moto-api"


class S3Unavailable(RuntimeError):
    """Why the S3 server cannot run here (the fixtures skip with this text)."""


def missing() -> str | None:
    """Why moto's server cannot run here (what to install), or None."""
    for module in ("moto.server", "flask", "werkzeug", "boto3", "s3fs"):
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            found = None
        if found is None:
            return f"no `{module}`: the S3 tests need moto's server and s3fs (pip install -e '.[test]', or 'moto[server]>=5.0' 's3fs>=2024.12')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_endpoint() -> str:
    """An http://127.0.0.1:PORT where nothing listens (connection refused), for the unreachable-endpoint tests."""
    return f"http://127.0.0.1:{free_port()}"


def classify(method: str, target: str) -> str:
    """GET/PUT/HEAD/DELETE/POST, or LIST for a GET on a bucket (no key) with ``list-type=2`` or ``prefix=`` in its query."""
    path, _, query = target.partition("?")
    if method == "GET" and "/" not in path.strip("/") and ("list-type=2" in query or "prefix=" in query):
        return "LIST"
    return method


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the test process dies (even killed), so no server outlives pytest."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class S3Server:
    """A running moto server; ``env()`` is what a client process needs to reach it."""

    port: int
    log_path: Path
    process: subprocess.Popen
    auth: bool = False
    key: str = ACCESS_KEY
    secret: str = SECRET_KEY
    _log: object = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, folder: Path, *, auth: bool = False, timeout: float = 30) -> S3Server:
        """Start moto's server on a free port, its output in ``folder/moto-PORT.log``; return once it answers HTTP.

        moto accepts any credentials by default. With ``auth=True`` it checks them (moto's IAM enforcement,
        ``INITIAL_NO_AUTH_ACTION_COUNT``): the first 3 actions are let through to create an IAM user with an ``s3:*``
        policy and its access key, which become ``key``/``secret`` (and ``env()``'s); a request signed with an unknown key
        then gets 403 InvalidAccessKeyId, a wrong secret 403 SignatureDoesNotMatch (s3fs: PermissionError).
        """
        reason = missing()
        if reason:
            raise S3Unavailable(reason)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log_path = folder / f"moto-{port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "INITIAL_NO_AUTH_ACTION_COUNT"}
        env["PYTHONUNBUFFERED"] = "1"
        if auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        log = open(log_path, "w")  # noqa: SIM115 - closed by stop()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        server = cls(port=port, log_path=log_path, process=process, auth=auth, _log=log)
        atexit.register(server.stop)
        try:
            server._wait_ready(timeout)
            if auth:
                server._make_user()
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise S3Unavailable(f"moto_server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}{_INFRA}/", timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answered
            except OSError:
                if time.monotonic() > deadline:
                    raise S3Unavailable(f"moto_server did not answer on {self.endpoint} within {timeout} s: {self.log_tail()}")
                time.sleep(0.05)

    def _make_user(self) -> None:
        iam = self.client("iam")
        iam.create_user(UserName="nnstd")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="nnstd", PolicyName="s3-all", PolicyDocument=json.dumps(policy))
        made = iam.create_access_key(UserName="nnstd")["AccessKey"]
        self.key, self.secret = made["AccessKeyId"], made["SecretAccessKey"]

    def env(self, **overrides: str) -> dict[str, str]:
        """The AWS_* variables a client process (s3fs, zarr, boto3) needs to reach this server, with ``overrides``
        (e.g. ``AWS_SECRET_ACCESS_KEY="wrong"``). Config and credentials files are pointed at a path that does not exist."""
        missing_file = str(self.log_path.parent / "no-aws-config")
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_CONFIG_FILE": missing_file,
            "AWS_SHARED_CREDENTIALS_FILE": missing_file,
            "AWS_EC2_METADATA_DISABLED": "true",
            **overrides,
        }

    def storage_options(self) -> dict:
        """s3fs options reaching this server without any environment variable."""
        return {"key": self.key, "secret": self.secret, "endpoint_url": self.endpoint, "client_kwargs": {"region_name": REGION}}

    def client(self, service: str = "s3"):
        """A boto3 client of this server (explicit endpoint and keys: it does not depend on the environment)."""
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, aws_access_key_id=self.key,
                            aws_secret_access_key=self.secret, region_name=REGION)

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique name if none is given) and return its name."""
        name = name or f"nnstd-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    # The request log.

    def request_lines(self, since: int = 0, until: int | None = None) -> list[tuple[str, str, int]]:
        """``(kind, target, status)`` of each S3 request logged between the marks ``since`` and ``until`` (now if None)."""
        with open(self.log_path, errors="replace") as f:
            lines = f.read().splitlines()
        found = []
        for line in lines[since:until]:
            m = _REQUEST.search(_ANSI.sub("", line))
            if m and not m.group(2).startswith(_INFRA):
                found.append((classify(m.group(1), m.group(2)), m.group(2), int(m.group(3))))
        return found

    def mark(self) -> int:
        """The log's line count now: pass it as ``since`` (or ``until``) to ``requests``."""
        with open(self.log_path, "rb") as f:
            return sum(1 for _ in f)

    def requests(self, since: int = 0, until: int | None = None) -> collections.Counter:
        """How many requests of each kind (GET/PUT/HEAD/DELETE/POST/LIST) were logged between the marks."""
        return collections.Counter(kind for kind, _, _ in self.request_lines(since, until))

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        """Terminate the server, kill it if it outlives ``timeout`` seconds (idempotent)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


# The fixtures. A session fixture imported into several test modules is one fixture per module to pytest: the servers are
# kept here so that every module gets the same one.
_servers: dict[bool, S3Server] = {}


def _server(tmp_path_factory, auth: bool) -> S3Server:
    reason = missing()
    if reason:
        pytest.skip(reason)
    server = _servers.get(auth)
    if server is None or server.process.poll() is not None:
        try:
            server = _servers[auth] = S3Server.start(tmp_path_factory.mktemp("s3-auth" if auth else "s3"), auth=auth)
        except S3Unavailable as e:
            pytest.skip(f"moto's S3 server does not run here: {e}")
    return server


def _stop(auth: bool) -> None:
    server = _servers.pop(auth, None)
    if server is not None:
        server.stop()


def _clear_s3fs_instances() -> None:
    # s3fs caches filesystems by their arguments: one made under another test's variables would keep its client.
    with contextlib.suppress(ImportError):
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Server:
    """moto's S3 server for the session (skips, saying what to install, without moto[server] and s3fs)."""
    yield _server(tmp_path_factory, auth=False)
    _stop(auth=False)


@pytest.fixture(scope="session")
def s3_auth_server(tmp_path_factory) -> S3Server:
    """A second moto server that checks credentials (``S3Server.start(auth=True)``)."""
    yield _server(tmp_path_factory, auth=True)
    _stop(auth=True)


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> S3Server:
    """``s3_server`` with its variables set (``s3fs.S3FileSystem()``, ``s3://`` URLs and boto3 reach it), and nothing else
    of AWS's configuration in the way; s3fs's cached filesystems are dropped before and after."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    _clear_s3fs_instances()
    yield s3_server
    _clear_s3fs_instances()


@pytest.fixture
def s3_bucket(s3_env) -> str:
    """A fresh, uniquely named bucket on ``s3_server`` (the variables of ``s3_env`` are set)."""
    return s3_env.make_bucket()
