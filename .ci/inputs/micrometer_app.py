"""A stand-in for a Spring Boot app's /actuator/prometheus, written with the official
prometheus_client package (pinned in requirements.txt), publishing the series that Micrometer
names for HikariCP, a Caffeine cache, a ThreadPoolTaskExecutor, JVM heap and threads, and
Tomcat, with Micrometer's label names.

    python micrometer_app.py PORT

GET  /actuator/prometheus  the exposition; prometheus_client picks the Prometheus text format
                           or OpenMetrics from the Accept header, and gzip from Accept-Encoding.
                           Every GET is one window of traffic: 90 cache hits and 10 misses,
                           and 100 HTTP requests of which `error_percent` answer 500.
POST /state                a JSON object merged into STATE (e.g. {"active": 31}); answers the
                           whole state. Healthy by default: 5 of 32 connections active.

Each request is logged on stderr with its Accept and Accept-Encoding headers.
"""

import json
import sys
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Summary, make_wsgi_app

MIB = 1024 * 1024
STATE = {
    "active": 5,  # hikaricp_connections_active
    "idle": 10,
    "max": 32,
    "pending": 0,
    "error_percent": 2,  # share of each window's requests answered 500
    "blocked": 0,  # jvm_threads_states_threads{state="blocked"}
}
LOCK = threading.Lock()
REGISTRY = CollectorRegistry(auto_describe=True)

POOL = {"pool": "HikariPool-1"}
for field, help_text in [
    ("active", "Active connections"),
    ("idle", "Idle connections"),
    ("max", "Max connections"),
    ("pending", "Pending threads"),
]:
    Gauge(f"hikaricp_connections_{field}", help_text, ["pool"], registry=REGISTRY).labels(
        **POOL
    ).set_function(lambda field=field: STATE[field])

# Caffeine through Spring's cache manager: the labels Micrometer's CacheMeterBinder writes.
CACHE = {"cache": "books", "cache_manager": "cacheManager", "name": "books"}
# prometheus_client adds `_total` (and a `_created` series) to a Counter's name itself.
CACHE_GETS = Counter(
    "cache_gets", "Cache lookups", [*CACHE, "result"], registry=REGISTRY
)
Counter("cache_evictions", "Cache evictions", list(CACHE), registry=REGISTRY).labels(
    **CACHE
).inc(3)
Gauge("cache_size", "Entries in the cache", list(CACHE), registry=REGISTRY).labels(
    **CACHE
).set(42)

EXECUTOR = {"name": "applicationTaskExecutor"}
for metric, value in [
    ("executor_active_threads", 2),
    ("executor_pool_max_threads", 8),
    ("executor_queued_tasks", 1),
    ("executor_queue_remaining_tasks", 99),  # capacity 100 = queued + remaining
]:
    Gauge(metric, metric, ["name"], registry=REGISTRY).labels(**EXECUTOR).set(value)

# G1: heap used 310 MiB of 1024 MiB (only the old generation has a max; -1 means none).
HEAP_POOLS = [
    ("heap", "G1 Eden Space", 100 * MIB, -1),
    ("heap", "G1 Old Gen", 200 * MIB, 1024 * MIB),
    ("heap", "G1 Survivor Space", 10 * MIB, -1),
    ("nonheap", "Metaspace", 80 * MIB, -1),
    ("nonheap", "CodeCache", 20 * MIB, 240 * MIB),
]
used = Gauge("jvm_memory_used_bytes", "Used", ["area", "id"], registry=REGISTRY)
limit = Gauge("jvm_memory_max_bytes", "Max", ["area", "id"], registry=REGISTRY)
for area, pool, used_bytes, max_bytes in HEAP_POOLS:
    used.labels(area=area, id=pool).set(used_bytes)
    limit.labels(area=area, id=pool).set(max_bytes)
threads = Gauge("jvm_threads_states_threads", "Threads", ["state"], registry=REGISTRY)
for state, count in [("runnable", 12), ("waiting", 20), ("timed-waiting", 9), ("new", 0), ("terminated", 0)]:
    threads.labels(state=state).set(count)
threads.labels(state="blocked").set_function(lambda: STATE["blocked"])

TOMCAT = {"name": "http-nio-8080"}
for metric, value in [
    ("tomcat_threads_busy_threads", 4),
    ("tomcat_threads_config_max_threads", 200),
    ("tomcat_connections_current_connections", 10),
]:
    Gauge(metric, metric, ["name"], registry=REGISTRY).labels(**TOMCAT).set(value)
# A Micrometer Timer: the summary's _count (and _sum) per outcome.
REQUESTS = Summary(
    "http_server_requests_seconds",
    "HTTP server requests",
    ["error", "exception", "method", "outcome", "status", "uri"],
    registry=REGISTRY,
)


def traffic():
    """One window of traffic, between two scrapes."""
    CACHE_GETS.labels(**CACHE, result="hit").inc(90)
    CACHE_GETS.labels(**CACHE, result="miss").inc(10)
    errors = int(STATE["error_percent"])
    ok = REQUESTS.labels("none", "none", "GET", "SUCCESS", "200", "/orders")
    failed = REQUESTS.labels("none", "IllegalStateException", "GET", "SERVER_ERROR", "500", "/orders")
    for _ in range(100 - errors):
        ok.observe(0.012)
    for _ in range(errors):
        failed.observe(0.250)


METRICS = make_wsgi_app(REGISTRY)


def app(environ, start_response):
    path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
    print(
        f"{method} {path} Accept={environ.get('HTTP_ACCEPT')!r} "
        f"Accept-Encoding={environ.get('HTTP_ACCEPT_ENCODING')!r}",
        file=sys.stderr,
        flush=True,
    )
    if path == "/actuator/prometheus" and method == "GET":
        with LOCK:
            traffic()
            return METRICS(environ, start_response)
    if path == "/state" and method == "POST":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        with LOCK:
            STATE.update(json.loads(environ["wsgi.input"].read(size) or b"{}"))
            body = json.dumps(STATE).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # app() logs each request with its headers
        pass


if __name__ == "__main__":
    port = int(sys.argv[1])
    with make_server("127.0.0.1", port, app, Server, QuietHandler) as server:
        print(f"micrometer_app: http://127.0.0.1:{port}/actuator/prometheus", file=sys.stderr, flush=True)
        server.serve_forever()
