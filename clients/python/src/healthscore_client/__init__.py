"""A Python client of healthscore, on the code grpcio-tools generates from ../../proto.

The generated modules are `healthscore.v1.{report,metrics,service}_pb2` and `service_pb2_grpc`.
This package adds what every app does with them: push its subsystems' snapshots
(`push_pool`, or a `Reporter` that keeps pushing), read the system report (`system_report`) and
follow changes (`watch`). `python -m healthscore_client 127.0.0.1:50051` runs the example.
"""

import grpc
from google.protobuf import duration_pb2

from healthscore.v1 import metrics_pb2, report_pb2, service_pb2, service_pb2_grpc
from healthscore_client.reporter import Reporter

__all__ = ["Reporter", "connect", "describe", "push_pool", "system_report", "watch"]


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
    """An iterator of SystemHealthReport: the current one, then one per change. Closing it
    cancels the call."""
    call = stub.WatchHealth(service_pb2.WatchHealthRequest(subsystems=list(subsystems)))
    try:
        for message in call:
            yield message.report
    finally:
        call.cancel()


def describe(report):
    """One line per issue, worst first, like `healthscore get`."""
    status = report_pb2.Status.Name(report.status).removeprefix("STATUS_").lower()
    lines = [f"system {status}, score {report.score}, revision {report.revision}"]
    for issue in report.issues:
        severity = report_pb2.Severity.Name(issue.severity).removeprefix("SEVERITY_").lower()
        lines.append(f"  {severity:<8} {issue.code} {issue.entity}: {issue.message}")
        lines.append(f"           -> {issue.suggested_action}")
    return "\n".join(lines)
