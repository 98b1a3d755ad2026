"""An app instrumented with the official OpenTelemetry Python SDK (opentelemetry-sdk and
opentelemetry-exporter-otlp-proto-grpc, pinned in requirements.txt) that exports, over OTLP/gRPC
without TLS every 500 ms, the semantic-convention metrics of one connection pool and a JVM:

  db.client.connection.count{db.client.connection.state=used|idle, db.client.connection.pool.name}
  db.client.connection.max, db.client.connection.pending_requests     {db.client.connection.pool.name}
  jvm.memory.used, jvm.memory.limit       {jvm.memory.type=heap|non_heap, jvm.memory.pool.name}
  jvm.thread.count                        {jvm.thread.daemon, jvm.thread.state}

    python otel_app.py ENDPOINT [--kind sum|gauge] [--temporality cumulative|delta]
        [--instance ID] [--pool NAME] [--used N] [--idle N] [--max N] [--pending N]
        [--heap-used-mib N] [--heap-limit-mib N] [--blocked N]

ENDPOINT is host:port of an OTLP gRPC receiver. --kind sum (the default) makes each an
ObservableUpDownCounter as the conventions say; gauge makes each an ObservableGauge. The
resource is service.name=checkout, service.instance.id=ID (default checkout-1), plus the SDK's
own telemetry.sdk.* attributes. Runs until SIGTERM or SIGINT, then flushes and exits 0.
"""

import argparse
import signal
import threading

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider, ObservableGauge, ObservableUpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

MIB = 1024 * 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("endpoint")
    parser.add_argument("--kind", choices=["sum", "gauge"], default="sum")
    parser.add_argument("--temporality", choices=["cumulative", "delta"], default="cumulative")
    parser.add_argument("--instance", default="checkout-1")
    parser.add_argument("--pool", default="orders-db")
    for flag, default in [("used", 31), ("idle", 1), ("max", 32), ("pending", 2)]:
        parser.add_argument(f"--{flag}", type=int, default=default)
    parser.add_argument("--heap-used-mib", type=int, default=970)
    parser.add_argument("--heap-limit-mib", type=int, default=1000)
    parser.add_argument("--blocked", type=int, default=2)
    args = parser.parse_args()

    temporality = getattr(AggregationTemporality, args.temporality.upper())
    exporter = OTLPMetricExporter(
        endpoint=args.endpoint,
        insecure=True,
        preferred_temporality={ObservableUpDownCounter: temporality},
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=500)
    resource = Resource.create({"service.name": "checkout", "service.instance.id": args.instance})
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("healthscore.ci.otel_app", "1.0.0")
    create = {"sum": meter.create_observable_up_down_counter, "gauge": meter.create_observable_gauge}[
        args.kind
    ]

    pool = {"db.client.connection.pool.name": args.pool}
    # The heap split over two G1 pools; only the old generation has a limit (as the JVM says).
    eden = {"jvm.memory.type": "heap", "jvm.memory.pool.name": "G1 Eden Space"}
    old = {"jvm.memory.type": "heap", "jvm.memory.pool.name": "G1 Old Gen"}
    metaspace = {"jvm.memory.type": "non_heap", "jvm.memory.pool.name": "Metaspace"}
    eden_used = 120 * MIB
    readings = {
        ("db.client.connection.count", "{connection}", "The number of connections in each state"): [
            (args.used, {**pool, "db.client.connection.state": "used"}),
            (args.idle, {**pool, "db.client.connection.state": "idle"}),
        ],
        ("db.client.connection.max", "{connection}", "The most connections allowed"): [(args.max, pool)],
        ("db.client.connection.pending_requests", "{request}", "Requests waiting for a connection"): [
            (args.pending, pool)
        ],
        ("jvm.memory.used", "By", "Measure of memory used"): [
            (eden_used, eden),
            (args.heap_used_mib * MIB - eden_used, old),
            (64 * MIB, metaspace),
        ],
        ("jvm.memory.limit", "By", "Measure of max obtainable memory"): [
            (args.heap_limit_mib * MIB, old),
            (256 * MIB, metaspace),
        ],
        ("jvm.thread.count", "{thread}", "Number of executing platform threads"): [
            (args.blocked, {"jvm.thread.daemon": False, "jvm.thread.state": "blocked"}),
            (14, {"jvm.thread.daemon": False, "jvm.thread.state": "runnable"}),
            (9, {"jvm.thread.daemon": True, "jvm.thread.state": "waiting"}),
        ],
    }
    for (name, unit, description), points in readings.items():
        create(
            name,
            callbacks=[lambda _options, points=points: [Observation(v, a) for v, a in points]],
            unit=unit,
            description=description,
        )

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"otel_app: exporting to {args.endpoint} as {args.instance} ({args.kind}, {args.temporality})", flush=True)
    stop.wait()
    provider.shutdown()


if __name__ == "__main__":
    main()
