"""The real healthscore binary for the tests: HEALTHSCORE_BIN, else target/debug/healthscore."""

import collections
import os
import socket
import subprocess

import pytest

import healthscore_client as hs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BINARY = os.environ.get("HEALTHSCORE_BIN", os.path.join(ROOT, "target", "debug", "healthscore"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(address):
    """`healthscore serve` on `address`, host sampler off, exiting at once on SIGTERM."""
    env = dict(
        os.environ,
        HEALTHSCORE_SERVER__LISTEN=address,
        HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS="0",
        HEALTHSCORE_HOST__ENABLED="false",
        HEALTHSCORE_HTTP__ENABLED="false",
    )
    return subprocess.Popen([BINARY, "serve"], env=env, stderr=subprocess.DEVNULL)


def stop_server(process):
    process.terminate()
    assert process.wait(timeout=10) == 0, "healthscore exits 0 on SIGTERM"


Server = collections.namedtuple("Server", "address process")


@pytest.fixture()
def spawn():
    """spawn(address=None) starts a server, on a free port unless given, and returns a Server.
    Those still running at the end are stopped, and must exit 0."""
    started = []

    def spawn(address=None):
        address = address or f"127.0.0.1:{free_port()}"
        started.append(Server(address, start_server(address)))
        return started[-1]

    yield spawn
    for server in started:
        if server.process.poll() is None:
            stop_server(server.process)


@pytest.fixture()
def server(spawn):
    """A fresh server: (address, channel, HealthReports stub)."""
    address = spawn().address
    channel, stub = hs.connect(address)
    with channel:
        yield address, channel, stub


@pytest.fixture()
def free_address():
    """An address nothing listens on."""
    return f"127.0.0.1:{free_port()}"
