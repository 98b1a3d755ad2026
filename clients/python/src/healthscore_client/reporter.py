"""Reporter: pushes one source's snapshots to healthscore at a steady interval, from a thread."""

import logging
import random
import threading

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from healthscore.v1 import service_pb2, service_pb2_grpc

_log = logging.getLogger(__name__)


class Reporter:
    """Pushes what `snapshot()` returns every `interval` seconds until closed.

    `snapshot` is a callable returning a `service_pb2.ReportMetricsRequest` that holds the
    snapshot lists (`datasources`, `caches`, ...). The Reporter fills in the rest of each push:
    `source`; `sequence` 1, 2, 3, ...; `ttl` in seconds, three intervals unless given (the server
    takes 1 s to 1 h by default); and `started_at`, the time `start()` ran, so that the server
    orders this run's pushes after those of an earlier run of the app.

    A push that fails, or a callback that raises, is logged (logger `healthscore_client.reporter`)
    and tried again after a backoff that doubles with each failure in a row (from `interval` up to
    `max_backoff`, +-20% jitter, so that many apps do not retry in step after a server restart). `close()` stops the thread and
    sends ForgetSource, so the source leaves at once instead of going stale.

        def snapshot():
            return service_pb2.ReportMetricsRequest(
                datasources=[metrics_pb2.DatasourceSnapshot(name="mainDB", active=5, max=32)])

        with grpc.insecure_channel("127.0.0.1:50051") as channel, \\
                Reporter(channel, "app-1", snapshot, interval=10):
            run_the_app()

    The channel stays the caller's: the Reporter neither opens nor closes it.
    """

    def __init__(self, channel, source, snapshot, *, interval=10.0, ttl=None, max_backoff=60.0,
                 timeout=5.0):
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        self.source = source
        self._stub = service_pb2_grpc.HealthReportsStub(channel)
        self._snapshot = snapshot
        self._interval = interval
        self._ttl = duration_pb2.Duration()
        self._ttl.FromNanoseconds(round((3 * interval if ttl is None else ttl) * 1e9))
        self._max_backoff = max(max_backoff, interval)
        self._timeout = timeout
        self._started_at = timestamp_pb2.Timestamp()
        self._sequence = 0
        self._closing = threading.Event()
        self._thread = None

    def start(self):
        """Pushes a first snapshot now and one every interval after it, from a daemon thread."""
        if self._thread is not None:
            raise RuntimeError(f"the reporter of {self.source!r} was already started")
        self._started_at.GetCurrentTime()
        self._thread = threading.Thread(
            target=self._run, name=f"healthscore-reporter-{self.source}", daemon=True)
        self._thread.start()
        return self

    def close(self):
        """Stops pushing (waiting for a push under way) and forgets the source on the server."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._stub.ForgetSource(
                service_pb2.ForgetSourceRequest(source=self.source), timeout=self._timeout)
        except grpc.RpcError as error:
            _log.warning("ForgetSource of %r failed (%s); it goes stale after its ttl",
                         self.source, _describe(error))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.close()

    def _run(self):
        failures = 0
        while True:
            try:
                self._push()
            except Exception as error:  # the callback's or the RPC's: the thread goes on
                failures += 1
                delay = min(self._interval * 2 ** (failures - 1), self._max_backoff)
                delay *= random.uniform(0.8, 1.2)
                _log.warning("push of %r failed (%s); retrying in %.1f s", self.source,
                             _describe(error), delay,
                             exc_info=not isinstance(error, grpc.RpcError))
            else:
                failures, delay = 0, self._interval
            if self._closing.wait(delay):
                return

    def _push(self):
        request = service_pb2.ReportMetricsRequest()
        request.CopyFrom(self._snapshot())
        self._sequence += 1
        request.source = self.source
        request.sequence = self._sequence
        request.ttl.CopyFrom(self._ttl)
        request.started_at.CopyFrom(self._started_at)
        self._stub.ReportMetrics(request, timeout=self._timeout)


def _describe(error):
    if isinstance(error, grpc.RpcError):
        return f"{error.code().name}: {error.details()}"
    return f"{type(error).__name__}: {error}"
