"""Interop: the real healthscore binary driven by Python's grpcio clients.

Uses this package's helpers on the generated code, grpcio-health-checking's standard
HealthStub and grpcio-reflection. The server comes from conftest.py.
"""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import healthscore_client as hs
from healthscore.v1 import report_pb2, service_pb2_grpc


def check(channel, service):
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_push_turns_system_critical_with_the_right_issue(server):
    _, channel, stub = server
    before = hs.system_report(stub)
    assert before.status == report_pb2.STATUS_HEALTHY
    assert before.score == 100

    response = hs.push_pool(stub, "py-1", "mainDB", active=31, maximum=32)
    assert response.applied
    assert response.entity_count == 1
    assert response.system_status == report_pb2.STATUS_CRITICAL

    report = hs.system_report(stub)
    assert report.status == report_pb2.STATUS_CRITICAL
    assert report.score == 50
    assert report.revision == response.revision
    [issue] = report.issues
    assert issue.code == "datasources:DS_POOL_SATURATED"
    assert issue.severity == report_pb2.SEVERITY_CRITICAL
    assert issue.entity == "mainDB"
    assert issue.source == "py-1"
    assert issue.entity_metrics["active"] == 31
    assert issue.entity_metrics["utilization"] == pytest.approx(96.9)
    assert report.subsystems["datasources"].score_breakdown.deductions[0].penalty == 50
    assert "saturated at 96% (31/32 active)" in issue.message


def test_standard_health_stub_check_and_watch(server):
    _, channel, stub = server
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    assert check(channel, "") == serving
    assert check(channel, "healthscore.v1.HealthReports") == serving
    with pytest.raises(grpc.RpcError) as unknown:
        check(channel, "no-such-service")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    health = health_pb2_grpc.HealthStub(channel)
    updates = health.Watch(health_pb2.HealthCheckRequest(service="datasources"), timeout=10)
    assert next(updates).status == serving
    hs.push_pool(stub, "py-1", "mainDB", active=32, maximum=32)
    assert next(updates).status == not_serving
    updates.cancel()
    assert check(channel, "") == not_serving
    assert check(channel, "caches") == serving


def test_watch_health_sends_current_state_then_changes_only(server):
    _, _, stub = server
    reports = hs.watch(hs.connect(server[0])[1], subsystems=["datasources"])
    first = next(reports)
    assert first.status == report_pb2.STATUS_HEALTHY
    hs.push_pool(stub, "py-1", "db", active=28, maximum=32)  # warning band
    warned = next(reports)
    assert warned.status == report_pb2.STATUS_WARNING
    assert [i.code for i in warned.issues] == ["datasources:DS_POOL_HIGH_UTILIZATION"]
    hs.push_pool(stub, "py-1", "db", active=29, maximum=32)  # same band: no message
    hs.push_pool(stub, "py-1", "db", active=31, maximum=32)  # critical band
    critical = next(reports)
    assert critical.status == report_pb2.STATUS_CRITICAL
    assert [i.code for i in critical.issues] == ["datasources:DS_POOL_SATURATED"]


def test_bad_input_is_invalid_argument_naming_the_field(server):
    _, _, stub = server
    with pytest.raises(grpc.RpcError) as error:
        hs.push_pool(stub, "py-1", "db", active=40, maximum=32)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'datasources[0] "db".active: 40 is above max (32)' in error.value.details()
    assert hs.system_report(stub).status == report_pb2.STATUS_HEALTHY


def test_reflection_lists_both_services(server):
    _, channel, _ = server
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [response] = list(reflection.ServerReflectionInfo(iter([request]), timeout=5))
    names = {service.name for service in response.list_services_response.service}
    assert {"healthscore.v1.HealthReports", "grpc.health.v1.Health"} <= names


def test_example_describe_renders_issues(server):
    _, _, stub = server
    hs.push_pool(stub, "py-1", "mainDB", active=31, maximum=32)
    text = hs.describe(hs.system_report(stub))
    assert text.startswith("system critical, score 50")
    assert "critical DS_POOL_SATURATED" not in text
    assert "datasources:DS_POOL_SATURATED mainDB" in text


def test_a_target_of_several_addresses_works_with_a_default_authority(server):
    # grpcio sends such a target whole as :authority, which the server refuses; the README's
    # client section gives this workaround.
    address = server[0]
    options = [("grpc.default_authority", "healthscore")]
    with grpc.insecure_channel(f"ipv4:{address},{address}", options=options) as channel:
        stub = service_pb2_grpc.HealthReportsStub(channel)
        assert hs.system_report(stub).status == report_pb2.STATUS_HEALTHY
