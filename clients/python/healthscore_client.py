"""A small healthscore client in Python, generated from ../../proto with grpcio-tools.

It shows the three things an app in any language does with healthscore: push its subsystems'
snapshots (ReportMetrics), read the system report (GetSystemHealth) and follow changes
(WatchHealth).

    ./generate.sh                      # writes gen/ from the protos
    python healthscore_client.py 127.0.0.1:50051
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from google.protobuf import duration_pb2  # noqa: E402
from healthscore.v1 import metrics_pb2, report_pb2, service_pb2, service_pb2_grpc  # noqa: E402


def connect(address):
    """A HealthReports stub on an insecure channel to `address` (host:port)."""
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=10)
    return channel, service_pb2_grpc.HealthReportsStub(channel)


def push_pool(stub, source, name, active, maximum, ttl_seconds=30, sequence=0):
    """Reports one connection pool of `source`; returns the ReportMetricsResponse."""
    request = service_pb2.ReportMetricsRequest(
        source=source,
        sequence=sequence,
        ttl=duration_pb2.Duration(seconds=ttl_seconds),
        datasources=[metrics_pb2.DatasourceSnapshot(name=name, active=active, max=maximum)],
    )
    return stub.ReportMetrics(request, timeout=5)


def system_report(stub, min_severity=report_pb2.SEVERITY_UNSPECIFIED):
    """The current SystemHealthReport."""
    options = service_pb2.ReportOptions(min_severity=min_severity, omit_entities=True)
    return stub.GetSystemHealth(service_pb2.GetSystemHealthRequest(options=options), timeout=5).report


def watch(stub, subsystems=()):
    """An iterator of SystemHealthReport: the current one, then one per change."""
    request = service_pb2.WatchHealthRequest(subsystems=list(subsystems))
    for message in stub.WatchHealth(request):
        yield message.report


def describe(report):
    """One line per issue, worst first, like `healthscore get`."""
    status = report_pb2.Status.Name(report.status).removeprefix("STATUS_").lower()
    lines = [f"system {status}, score {report.score}, revision {report.revision}"]
    for issue in report.issues:
        severity = report_pb2.Severity.Name(issue.severity).removeprefix("SEVERITY_").lower()
        lines.append(f"  {severity:<8} {issue.code} {issue.entity}: {issue.message}")
        lines.append(f"           -> {issue.suggested_action}")
    return "\n".join(lines)


def main(address):
    channel, stub = connect(address)
    with channel:
        response = push_pool(stub, source="python-example", name="mainDB", active=31, maximum=32)
        print(f"pushed {response.entity_count} entities, applied={response.applied}")
        print(describe(system_report(stub)))
        print("following changes (Ctrl-C to stop):")
        for report in watch(stub):
            print(describe(report))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")
