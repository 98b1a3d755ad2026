"""The Reporter against the real healthscore binary.

An interceptor on the Reporter's channel records every call it makes, so the tests see the
requests as sent and the server's answers.
"""

import logging
import time

import grpc
import pytest

import healthscore_client as hs
from healthscore.v1 import metrics_pb2, service_pb2


class Recorder(grpc.UnaryUnaryClientInterceptor):
    """Keeps each unary call made through it as (time sent, method name, request, call)."""

    def __init__(self):
        self.calls = []

    def intercept_unary_unary(self, continuation, client_call_details, request):
        sent = time.monotonic()
        call = continuation(client_call_details, request)
        self.calls.append((sent, client_call_details.method.rsplit("/", 1)[-1], request, call))
        return call

    def times(self, method):
        return [sent for sent, name, _, _ in self.calls if name == method]

    def requests(self, method):
        return [request for _, name, request, _ in self.calls if name == method]

    def responses(self, method):
        return [call.result() for _, name, _, call in self.calls if name == method]


def pool():
    return service_pb2.ReportMetricsRequest(
        datasources=[metrics_pb2.DatasourceSnapshot(name="mainDB", active=5, max=32)])


def pools_of(stub, source):
    report = stub.GetDatasourceHealth(service_pb2.GetDatasourceHealthRequest(), timeout=5).report
    return [entity.name for entity in report.entities if entity.source == source]


def wait_for(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still false after {timeout} s")
        time.sleep(0.05)


def test_pushes_carry_increasing_sequences_one_start_time_and_three_intervals_of_ttl(server):
    address, _, stub = server
    recorder = Recorder()
    before = time.time()
    with grpc.intercept_channel(grpc.insecure_channel(address), recorder) as channel:
        with hs.Reporter(channel, "py-reporter", pool, interval=0.4):
            wait_for(lambda: len(recorder.requests("ReportMetrics")) >= 3)
            assert pools_of(stub, "py-reporter") == ["mainDB"]
    pushes = recorder.requests("ReportMetrics")
    assert [push.sequence for push in pushes] == list(range(1, len(pushes) + 1))
    assert all(response.applied for response in recorder.responses("ReportMetrics"))
    assert {push.started_at.ToNanoseconds() for push in pushes} == {pushes[0].started_at.ToNanoseconds()}
    assert before <= pushes[0].started_at.ToNanoseconds() / 1e9 <= time.time()
    assert {push.ttl.ToMilliseconds() for push in pushes} == {1200}
    assert {push.source for push in pushes} == {"py-reporter"}


def test_close_forgets_the_source_and_stops_pushing(server):
    address, _, stub = server
    recorder = Recorder()
    with grpc.intercept_channel(grpc.insecure_channel(address), recorder) as channel:
        with hs.Reporter(channel, "py-reporter", pool, interval=0.1, ttl=5):
            wait_for(lambda: pools_of(stub, "py-reporter") == ["mainDB"])
        [forgotten] = recorder.responses("ForgetSource")
        assert forgotten.forgotten
        assert pools_of(stub, "py-reporter") == []
        pushed = len(recorder.requests("ReportMetrics"))
        time.sleep(0.3)
        assert len(recorder.requests("ReportMetrics")) == pushed


def test_a_failing_callback_is_logged_and_retried(server, caplog):
    address, _, stub = server
    calls = []

    def flaky():
        calls.append(None)
        if len(calls) <= 2:
            raise RuntimeError("pool metrics unavailable")
        return pool()

    with grpc.insecure_channel(address) as channel:
        with hs.Reporter(channel, "py-reporter", flaky, interval=0.1, ttl=5):
            wait_for(lambda: pools_of(stub, "py-reporter") == ["mainDB"])
    failures = [r for r in caplog.records if "RuntimeError: pool metrics unavailable" in r.message]
    assert len(failures) == 2
    assert all(r.levelno == logging.WARNING and r.exc_info for r in failures)


def test_failed_pushes_back_off_exponentially(free_address):
    recorder = Recorder()
    with grpc.intercept_channel(grpc.insecure_channel(free_address), recorder) as channel:
        with hs.Reporter(channel, "py-reporter", pool, interval=0.1, ttl=5):
            wait_for(lambda: len(recorder.times("ReportMetrics")) >= 5)
    sent = recorder.times("ReportMetrics")
    gaps = [later - earlier for earlier, later in zip(sent, sent[1:])]
    # 0.1, 0.2, 0.4, 0.8 s, each -20% at worst
    assert [gap >= 0.08 * 2**n for n, gap in enumerate(gaps[:4])] == [True] * 4, gaps


def test_a_server_restart_is_survived(spawn, caplog):
    first = spawn()
    with grpc.insecure_channel(first.address) as channel, \
            hs.Reporter(channel, "py-reporter", pool, interval=0.1, ttl=5):
        observer, stub = hs.connect(first.address)
        with observer:
            wait_for(lambda: pools_of(stub, "py-reporter") == ["mainDB"])
        first.process.kill()
        first.process.wait(timeout=10)
        wait_for(lambda: any("UNAVAILABLE" in record.message for record in caplog.records))

        second = spawn(first.address)
        observer, stub = hs.connect(second.address)
        with observer:
            wait_for(lambda: pools_of(stub, "py-reporter") == ["mainDB"])
