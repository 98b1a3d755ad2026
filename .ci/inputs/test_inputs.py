"""healthscore scoring what real producers publish, none of them written for it:

- Debian's prometheus-node-exporter, scraped with the `node` profile: this machine's cpu,
  memory and root filesystem as host entities of source `scrape:node`, next to the host
  sampler's (source `host`);
- micrometer_app.py (the official prometheus_client, Micrometer's series names), scraped with
  the `micrometer` profile: every subsystem's entity, the pool pushed to 31/32 turning
  datasources critical, the app stopped turning its source stale;
- otel_app.py (the official OpenTelemetry SDK and OTLP gRPC exporter) exporting to the gRPC
  port: the pool and heap entities of source `service.instance.id` and their issues, for
  observable up-down counters (cumulative and delta) and observable gauges.

Run by .ci/inputs.sh: HEALTHSCORE_BIN (default target/debug/healthscore) is the server;
INPUTS_SCRATCH (default a new temporary directory) holds the config and every process's log.
Reports are read from the HTTP listener's /v1/health/<subsystem> and, for host, with
`healthscore get`.
"""

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = Path(os.environ.get("HEALTHSCORE_BIN", ROOT / "target/debug/healthscore")).resolve()
SCRATCH = Path(os.environ.get("INPUTS_SCRATCH") or tempfile.mkdtemp(prefix="healthscore-inputs."))
MIB = 1024 * 1024


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_parent():
    """In the child: SIGTERM when the test process dies, so nothing outlives a killed run."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start(name, argv, env=None):
    """Starts a process whose stdout and stderr go to SCRATCH/<name>.log."""
    log = open(SCRATCH / f"{name}.log", "ab")
    return subprocess.Popen(
        [str(a) for a in argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        preexec_fn=die_with_parent,
    )


def stop(proc):
    """SIGTERM, then SIGKILL after 5 s; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def log_tail(name, lines=15):
    path = SCRATCH / f"{name}.log"
    text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
    return "\n".join(f"    {line}" for line in text)


def wait_http(url, proc, name, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode} at start:\n{log_tail(name)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return answer.read()
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not answer {url} within {timeout} s:\n{log_tail(name)}")
        time.sleep(0.2)


def eventually(check, timeout, what):
    """Runs check() until it returns without an AssertionError; fails with the last one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError as error:
            last = error
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s: {last}", pytrace=False)
        time.sleep(0.25)


def close(actual, expected, tolerance, what):
    assert actual is not None and abs(actual - expected) <= tolerance, (
        f"{what} is {actual}, want {expected} ± {tolerance}"
    )


class Server:
    def __init__(self, proc, grpc, http):
        self.proc, self.grpc, self.http = proc, grpc, http

    def report(self, subsystem):
        assert self.proc.poll() is None, f"healthscore exited with {self.proc.returncode}"
        url = f"http://{self.http}/v1/health/{subsystem}?max_entities=1000"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as error:  # a critical report answers 503, with the report
            if error.code != 503:
                raise
            return json.load(error)

    def cli_report(self, subsystem):
        argv = [BIN, "get", subsystem, "-o", "json", "--addr", self.grpc, "--max-entities", "1000"]
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, f"healthscore get {subsystem}: {done.stderr.strip()}"
        return json.loads(done.stdout)


def entity(report, name, source):
    """The report's entity of that name and source; fails listing what is there."""
    for found in report["entities"]:
        if found["name"] == name and found["source"] == source:
            return found
    there = sorted((e["source"], e["name"]) for e in report["entities"])
    raise AssertionError(f"no {report['subsystem']} entity {name!r} of source {source!r}; there: {there}")


def issue(report, code, entity_name, source, severity):
    for found in report["issues"]:
        if (found["code"], found.get("entity"), found.get("source")) == (code, entity_name, source):
            assert found["severity"] == severity, f"{code} is {found['severity']}, want {severity}"
            return found
    there = [(i["code"], i.get("entity"), i.get("source")) for i in report["issues"]]
    raise AssertionError(f"no {code} on {entity_name!r} of {source!r} in {report['subsystem']}; issues: {there}")


def metrics_match(found, expected, what):
    for key, want in expected.items():
        close(found["metrics"].get(key), want, 0.5, f"{what} {key}")


@pytest.fixture(scope="module")
def node_exporter():
    exe = shutil.which("prometheus-node-exporter")
    assert exe, "prometheus-node-exporter is not installed (Debian package prometheus-node-exporter)"
    port = free_port()
    proc = start(
        "node-exporter",
        [exe, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
         "--collector.cpu", "--collector.meminfo", "--collector.filesystem", "--collector.loadavg"],
    )
    url = f"http://127.0.0.1:{port}/metrics"
    wait_http(url, proc, "node-exporter")
    yield url
    stop(proc)


class MicrometerApp:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/actuator/prometheus"
        self.proc = start("micrometer-app", [sys.executable, HERE / "micrometer_app.py", self.port])
        wait_http(self.url, self.proc, "micrometer-app")

    def set_state(self, **state):
        body = json.dumps(state).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/state", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.load(answer)


@pytest.fixture(scope="module")
def micrometer():
    app = MicrometerApp()
    yield app
    stop(app.proc)


@pytest.fixture(scope="module")
def server(node_exporter, micrometer):
    assert BIN.is_file(), f"no healthscore binary at {BIN} (build it, or set HEALTHSCORE_BIN)"
    config = SCRATCH / "inputs.toml"
    config.write_text(
        f"""# Written by .ci/inputs/test_inputs.py
[host]
enabled = true
interval_secs = 1
cpu_window_secs = 1

[[scrape]]
name = "node"
url = "{node_exporter}"
interval_secs = 1
timeout_secs = 1
profile = "node"

[[scrape]]
name = "orders"
url = "{micrometer.url}"
interval_secs = 1
timeout_secs = 1
profile = "micrometer"
"""
    )
    check = subprocess.run([str(BIN), "config", "check", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.fail(
            f"`healthscore config check` rejected the inputs config (exit {check.returncode}):\n"
            f"{check.stdout}{check.stderr}\n--- {config}\n{config.read_text()}",
            pytrace=False,
        )
    grpc, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    proc = start(
        "healthscore",
        [BIN, "serve", "--config", config, "--listen", grpc],
        env={"HEALTHSCORE_HTTP__LISTEN": http, "HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS": "0"},
    )
    wait_http(f"http://{http}/livez", proc, "healthscore")
    print(f"\nhealthscore: gRPC {grpc}, HTTP {http}; node_exporter {node_exporter}; micrometer {micrometer.url}")
    yield Server(proc, grpc, http)
    stop(proc)


def test_node_exporter_matches_the_host_sampler(server):
    """cpu, memory and / from node_exporter, within a few points of the host sampler's."""

    def check():
        report = server.cli_report("host")
        usage = {}
        for name in ("cpu", "memory", "/"):
            for source in ("host", "scrape:node"):
                found = entity(report, name, source)
                assert not found["stale"], f"host entity {name} of {source} is stale"
                value = found["metrics"].get("usage")
                assert value is not None and 0 <= value <= 100, f"{name} of {source}: usage {value}"
                usage[name, source] = value
            if name != "cpu":
                for key in ("usedBytes", "totalBytes"):
                    assert entity(report, name, "scrape:node")["metrics"].get(key, 0) > 0, f"{name}: no {key}"
        for name, tolerance in (("memory", 3), ("/", 3), ("cpu", 25)):
            close(usage[name, "scrape:node"], usage[name, "host"], tolerance, f"{name} usage of scrape:node (host's)")
        return usage

    usage = eventually(check, 20, "cpu, memory and / of scrape:node next to host's")
    print("host vs scrape:node usage:", {f"{n} ({s})": v for (n, s), v in sorted(usage.items())})


def test_micrometer_series_become_entities(server):
    """Every subsystem the micrometer profile maps, from the app's default (healthy) state."""
    source = "scrape:orders"
    expected = {
        "datasources": ("HikariPool-1", {"active": 5, "idle": 10, "max": 32, "threadsAwaiting": 0}),
        "caches": ("books", {"size": 42, "evictions": 3, "hitRate": 90}),
        "executors": ("applicationTaskExecutor", {"active": 2, "maxThreads": 8, "queued": 1, "queueCapacity": 100}),
        "runtime": ("jvm", {"heapUsedBytes": 310 * MIB, "heapMaxBytes": 1024 * MIB, "blockedThreads": 0}),
        "webServer": ("http-nio-8080", {"busyWorkers": 4, "maxWorkers": 200, "connections": 10, "errorRate": 2}),
    }

    def check():
        for subsystem, (name, metrics) in expected.items():
            metrics_match(entity(server.report(subsystem), name, source), metrics, f"{subsystem} {name}")
        report = server.report("datasources")
        assert report["status"] == "healthy", f"datasources is {report['status']} at 5/32: {report['issues']}"

    eventually(check, 10, f"the micrometer entities of {source}")


def test_micrometer_pool_saturates_then_goes_stale(server, micrometer):
    """31/32 active: DS_POOL_SATURATED; the app stopped: SOURCE_STALE after 3 intervals."""
    source = "scrape:orders"
    assert micrometer.set_state(active=31)["active"] == 31

    def saturated():
        report = server.report("datasources")
        assert report["status"] == "critical", f"datasources is {report['status']}"
        issue(report, "DS_POOL_SATURATED", "HikariPool-1", source, "critical")
        metrics_match(entity(report, "HikariPool-1", source), {"active": 31, "max": 32}, "HikariPool-1")

    eventually(saturated, 5, "DS_POOL_SATURATED on HikariPool-1 at 31/32")

    assert stop(micrometer.proc) in (0, -signal.SIGTERM)
    stopped = time.monotonic()

    def stale():
        report = server.report("datasources")
        found = [i for i in report["issues"] if i["code"] == "SOURCE_STALE" and i.get("source") == source]
        assert found, f"no SOURCE_STALE for {source}; issues: {[(i['code'], i.get('source')) for i in report['issues']]}"
        mine = [e for e in report["entities"] if e["source"] == source]
        assert mine and all(e["stale"] for e in mine), f"entities of {source}: {mine}"

    eventually(stale, 6, f"SOURCE_STALE for {source} after the app stopped")
    print(f"scrape:orders stale {time.monotonic() - stopped:.1f} s after the app stopped")


@pytest.mark.parametrize(
    "instance, options",
    [
        ("checkout-1", []),  # ObservableUpDownCounter, cumulative: what the conventions say
        ("checkout-2", ["--kind", "gauge"]),
        ("checkout-3", ["--temporality", "delta"]),  # a change per export: 31, then 0, 0, ...
    ],
    ids=["updowncounter-cumulative", "gauge", "updowncounter-delta"],
)
def test_otlp_export_from_the_opentelemetry_sdk(server, instance, options):
    """orders-db at 31 used of 32 and a heap at 970 of 1000 MiB, exported every 500 ms."""
    name = f"otel-app-{instance}"
    app = start(name, [sys.executable, HERE / "otel_app.py", server.grpc, "--instance", instance, *options])

    def check():
        assert app.poll() is None, f"otel_app exited with {app.returncode}:\n{log_tail(name)}"
        pools = server.report("datasources")
        issue(pools, "DS_POOL_SATURATED", "orders-db", instance, "critical")
        metrics_match(
            entity(pools, "orders-db", instance),
            {"active": 31, "idle": 1, "max": 32, "threadsAwaiting": 2},
            "orders-db",
        )
        runtime = server.report("runtime")
        issue(runtime, "JVM_HEAP_CRITICAL", "jvm", instance, "critical")
        metrics_match(
            entity(runtime, "jvm", instance),
            {"heapUsedBytes": 970 * MIB, "heapMaxBytes": 1000 * MIB, "blockedThreads": 2},
            "jvm",
        )

    try:
        eventually(check, 10, f"the OTLP entities of {instance}")
        time.sleep(1.5)  # three more exports (deltas of 0 must not move anything)
        eventually(check, 1, f"the OTLP entities of {instance}, still, after more exports")
    finally:
        code = stop(app)
    assert code == 0, f"otel_app exited with {code}:\n{log_tail(name)}"
