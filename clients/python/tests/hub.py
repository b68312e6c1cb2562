"""A real hub for the tests: the `tidings` binary on a free loopback port with a fresh
store and a development tenant, stopped by its PID (as client-js/test-browser does).

The store is SQLite, or with TIDINGS_TEST_BACKEND=postgres a fresh database on the
server scripts/services.sh started (TIDINGS_TEST_POSTGRES_URL, TIDINGS_TEST_PG_BIN)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[3]
TENANT = "pyclinic"
API_KEY = "tdk_python_0123456789abcdef"
JWT_SECRET = "python-suite-secret-0123456789"


def binary() -> Path:
    if os.environ.get("TIDINGS_BIN"):
        return Path(os.environ["TIDINGS_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    return target / "debug" / "tidings"


def database_url(work: str) -> str:
    if os.environ.get("TIDINGS_TEST_BACKEND") != "postgres":
        return f"sqlite://{work}/db"
    server = os.environ.get("TIDINGS_TEST_POSTGRES_URL")
    pg_bin = os.environ.get("TIDINGS_TEST_PG_BIN")
    if not server or not pg_bin:
        raise RuntimeError("TIDINGS_TEST_BACKEND=postgres needs scripts/services.sh's services_start")
    name = f"py_{uuid.uuid4().hex[:12]}"
    subprocess.run([f"{pg_bin}/psql", server, "-qc", f"CREATE DATABASE {name}"], check=True)
    return server.rsplit("/", 1)[0] + "/" + name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Hub:
    url: str
    api_key: str
    process: subprocess.Popen[bytes]
    dir: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        return (Path(self.dir) / "hub.log").read_text(errors="replace")[-4000:]


def start(extra_env: dict[str, str] | None = None) -> Hub:
    exe = binary()
    if not exe.exists():
        raise RuntimeError(f"no hub binary at {exe}: run `cargo build` (or set TIDINGS_BIN)")
    work = tempfile.mkdtemp(prefix="tidings-python-")
    port = free_port()
    env = {
        **os.environ,
        "TIDINGS_LISTEN": f"127.0.0.1:{port}",
        "TIDINGS_DATABASE_URL": database_url(work),
        "TIDINGS_DEV_TENANT": TENANT,
        "TIDINGS_DEV_API_KEY": API_KEY,
        "TIDINGS_DEV_JWT_SECRET": JWT_SECRET,
        "TIDINGS_LOG_LEVEL": "warn",
        "TIDINGS_SHUTDOWN__GRACE_SECS": "1",
        **(extra_env or {}),
    }
    log = open(Path(work) / "hub.log", "wb")
    process = subprocess.Popen([str(exe), "serve"], cwd=work, env=env, stdout=log, stderr=log)
    hub = Hub(f"http://127.0.0.1:{port}", API_KEY, process, work)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"hub exited with {process.returncode}:\n{hub.log()}")
        try:
            if httpx.get(f"{hub.url}/readyz", timeout=1).status_code == 200:
                return hub
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    hub.stop()
    raise RuntimeError("hub not ready within 30 s")
