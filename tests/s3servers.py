"""Real S3 servers on loopback, started by the tests: moto's server and SeaweedFS.

``s3`` is parametrised over both: each test gets a fresh bucket on a running server and
the environment a user would set (``AWS_ENDPOINT_URL_S3``, keys, region). A server that
does not start fails the tests that need it; nothing is skipped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fda_vault import _s3

ACCESS_KEY = "fda-vault-test"
SECRET_KEY = "fda-vault-test-secret"


@dataclass
class Server:
    name: str
    endpoint: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(endpoint: str, process: subprocess.Popen[bytes] | None, log: Path | None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            raise RuntimeError(f"the S3 server exited ({process.returncode}): {tail}")
        try:
            urllib.request.urlopen(endpoint, timeout=2)
        except urllib.error.HTTPError:
            return  # it answers (403 without credentials): it is up
        except OSError:
            time.sleep(0.2)
            continue
        return
    raise RuntimeError(f"the S3 server at {endpoint} did not answer within 60 s")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Server]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    _wait_for(endpoint, None, None)
    yield Server("moto", endpoint)
    server.stop()


def weed_binary() -> str:
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else "weed"


@contextlib.contextmanager
def seaweedfs(root: Path, volume_mb: int = 64, volumes: int = 64) -> Iterator[Server]:
    """A SeaweedFS server (master, volume, filer, S3 gateway) on free loopback ports, its
    data and log under ``root``, with the test keys; stopped on exit. It holds at most
    ``volumes`` volumes of ``volume_mb`` MB (deleted objects free their space only when a
    volume is vacuumed). The benchmark uses it too, with larger volumes."""
    config = root / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "test",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    log = root / "weed.log"
    (root / "data").mkdir()
    command = [
        weed_binary(), "server", f"-dir={root / 'data'}", "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1", "-master.telemetry=false", f"-master.volumeSizeLimitMB={volume_mb}",
        f"-volume.max={volumes}",
        f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
        f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
        "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={grpc['s3']}",
        f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        _wait_for(endpoint, process, log)
        _wait_until_writable(endpoint)
        yield Server("seaweedfs", endpoint)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def seaweed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


def boto_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def _wait_until_writable(endpoint: str) -> None:
    """SeaweedFS answers before its volume server has joined: wait for a first write."""
    s3 = boto_client(endpoint)
    deadline = time.monotonic() + 60
    bucket = "fda-vault-probe"
    while True:
        try:
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key="probe", Body=b"ok")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@dataclass
class Bucket:
    """A fresh place on a running server (a prefix of its own in a bucket of the session:
    SeaweedFS gives each bucket volumes of its own, which a bucket per test would exhaust),
    and a client to look at it directly."""

    server: str
    endpoint: str
    name: str
    prefix: str
    client: Any

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}"

    def keys(self, *, with_trail: bool = False) -> list[str]:
        """The keys under this test's prefix, relative to it (the audit trail's events
        only ``with_trail``: every command adds some)."""
        listed = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=f"{self.prefix}/"
        )
        keys = sorted(
            item["Key"].removeprefix(f"{self.prefix}/")
            for page in listed
            for item in page.get("Contents", [])
        )
        return [k for k in keys if with_trail or "fda-vault-audit/" not in k]

    def uploads(self) -> list[str]:
        listed = self.client.list_multipart_uploads(Bucket=self.name, Prefix=f"{self.prefix}/")
        return sorted(
            item["Key"].removeprefix(f"{self.prefix}/") for item in listed.get("Uploads", [])
        )

    def read(self, relative: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=self.name, Key=self.key(relative))[
            "Body"
        ].read()
        return data

    def put(self, relative: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=self.key(relative), Body=data)

    def env(self) -> dict[str, str]:
        """The environment of a child process that uses this server."""
        return {**os.environ, **server_env(self.endpoint)}


def server_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


_SESSION_BUCKETS: dict[tuple[str, bool], str] = {}


def _bucket(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, object_lock: bool
) -> Bucket:
    server: Server = request.getfixturevalue(f"{request.param}_server")
    for key, value in server_env(server.endpoint).items():
        monkeypatch.setenv(key, value)
    _s3.client.cache_clear()
    client = boto_client(server.endpoint)
    name = _SESSION_BUCKETS.get((server.endpoint, object_lock))
    if name is None:
        name = f"fda-vault-{'locked' if object_lock else 'tests'}-{uuid.uuid4().hex[:8]}"
        if object_lock:
            client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        else:
            client.create_bucket(Bucket=name)
        _SESSION_BUCKETS[server.endpoint, object_lock] = name
    return Bucket(server.name, server.endpoint, name, f"t-{uuid.uuid4().hex[:12]}", client)


@pytest.fixture(params=["moto", "seaweed"])
def s3(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    """A fresh prefix on each real server in turn."""
    yield _bucket(request, monkeypatch, object_lock=False)
    _s3.client.cache_clear()


@pytest.fixture(params=["moto", "seaweed"])
def s3_locked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    """A fresh prefix in a bucket with Object Lock enabled (versioned), on each server."""
    yield _bucket(request, monkeypatch, object_lock=True)
    _s3.client.cache_clear()


class DroppingProxy:
    """A TCP proxy on loopback in front of a server, which drops connections on demand.

    Armed with ``drop_after(n)``, it forwards ``n`` more bytes from clients to the server
    and then resets every open connection (RST, as a crashed load balancer or a lost
    network does); with ``stay_down`` it resets each new connection too until ``heal()``.
    """

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._budget: int | None = None
        self._stay_down = False
        self.down = False
        self.drops = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_after(self, size: int, *, stay_down: bool = False) -> None:
        with self._lock:
            self._budget, self._stay_down = size, stay_down

    def heal(self) -> None:
        with self._lock:
            self._budget, self.down = None, False

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            self._reset_all()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self.down:
                    _reset(downstream)
                    continue
            upstream = socket.create_connection(self._upstream)
            with self._lock:
                self._open |= {downstream, upstream}
            threading.Thread(
                target=self._pump, args=(downstream, upstream, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, downstream, False), daemon=True
            ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                if counted and self._spend(len(data)):
                    return
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            for sock in (source, sink):
                if sock in self._open:
                    self._open.discard(sock)
                    _reset(sock)

    def _spend(self, size: int) -> bool:
        """Count bytes going up; True when they ran out (every connection is then reset)."""
        with self._lock:
            if self._budget is None:
                return False
            self._budget -= size
            if self._budget > 0:
                return False
            self._budget, self.down = None, self._stay_down
            self.drops += 1
            self._reset_all()
            return True

    def _reset_all(self) -> None:
        for sock in self._open:
            _reset(sock)
        self._open.clear()


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def dropping_proxy(s3: Bucket, monkeypatch: pytest.MonkeyPatch) -> Iterator[DroppingProxy]:
    """A proxy in front of the ``s3`` server; fda-vault (not the test's client) uses it."""
    proxy = DroppingProxy(s3.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)
    _s3.client.cache_clear()
    yield proxy
    proxy.close()
