"""Test support for strict mode: a moto server from tests/moto_launcher.py and boto3 clients.

Used by tests/strict_test.py and tests/strict_smoke_test.py (unittest, nothing to install
beyond moto[server]). One strict server is shared by every test in the process and reset
between tests (POST /moto-api/reset).
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

import boto3
from botocore.config import Config

LAUNCHER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "moto_launcher.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python3 tests/moto_launcher.py` on a free loopback port."""

    def __init__(self, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="strict-moto-", suffix=".log", delete=False)
        environment = dict(os.environ, AWS_EC2_METADATA_DISABLED="true", **env)
        environment.pop("MOTO_PORT", None)
        self.process = subprocess.Popen(
            [sys.executable, LAUNCHER, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        deadline = time.time() + 60
        while True:
            try:
                self.reset()
                break
            except (OSError, urllib.error.URLError):
                if self.process.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"moto did not start; see {self.log.name}")
                time.sleep(0.2)
        self.configure({"stepfunctions": {"execute_state_machine": True}})

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def reset(self) -> None:
        urllib.request.urlopen(
            urllib.request.Request(self.url + "/moto-api/reset", data=b"", method="POST"), timeout=10
        ).read()

    def configure(self, config: dict[str, Any]) -> None:
        self.request("POST", "/moto-api/config", config)

    def client_in_account(self, service: str, account: str) -> Any:
        """A client whose calls moto answers as `account` (its `x-moto-account-id` header)."""
        client = self.client(service)

        def header(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account

        client.meta.events.register("before-sign.*.*", header)
        return client

    def client(self, service: str) -> Any:
        # parameter_validation=False: let bad values reach the server, as the Rust SDK does.
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                s3={"addressing_style": "path"},
            ),
        )

    def output(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as log:
            return log.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


_shared: Server | None = None


def shared() -> Server:
    """The strict server every test of this process uses (started once, stopped at exit)."""
    global _shared
    if _shared is None:
        _shared = Server()
        atexit.register(_shared.stop)
    return _shared


def error_of(call: Any) -> tuple[str, int, str]:
    """(code, HTTP status, message) of the ClientError `call()` raises; fails if none."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - botocore ClientError
        response = getattr(exc, "response", None)
        if response is None:
            raise
        error = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code", ""), status, error.get("Message", "")
    raise AssertionError("the call was accepted")
