"""The background thread of a client-driven range test's run.

The training thread only appends (step, loss, skipped, elapsed) tuples to a
deque; this thread sends them in batches (every flush_interval, at once
when batch_steps wait), renews the run's lease when there is nothing to
send, and reads the answers: the acknowledged step (a step is kept until
then, so after a dropped connection or a coordinator restart it is resent
from acked + 1: the coordinator keeps each step once) and STOP. A lapsed
lease (FAILED_PRECONDITION) is taken back by joining again with the same
client_id. An error the coordinator gives, or no answer for give_up_after
seconds, ends the run: `error` holds it. client_run.proto has the protocol.
"""

import collections
import threading
import time

import grpc

from lrtune.client import LrtuneError
from lrtune.v1 import client_run_pb2

_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 2.0
_RPC_TIMEOUT = 30.0


def _seconds(duration) -> float:
    return duration.seconds + duration.nanos * 1e-9


class Reporter(threading.Thread):
    """Reports one run. `over` turns true on STOP or an error; `stop_reason`
    says why; `error` is the LrtuneError that ended it, if any."""

    def __init__(self, conn, run, client_id: str, *, flush_interval: float,
                 batch_steps: int, give_up_after: float):
        super().__init__(name=f"lrtune-run-{run.run_index}", daemon=True)
        self._conn = conn
        self._run_id = run.run_id
        self._job_id = run.job_id
        self._run_index = run.run_index
        self._client_id = client_id
        self._flush_interval = flush_interval
        self._batch = max(1, min(batch_steps, run.max_steps_per_report or batch_steps))
        self._give_up = give_up_after
        self._report_interval = max(_seconds(run.report_interval), 0.01)
        self.pending = collections.deque()  # appended by the training thread
        self.attempt_id = run.attempt_id
        self.acked = run.acked_step
        self.over = False
        self.stopped_by_coordinator = False
        self.stop_reason = ""
        self.error = None
        self._wake = threading.Event()
        self._flush = False
        self._quit = False

    # --- the training thread's side ---

    def add(self, step: int, loss, skipped: int, elapsed: float):
        """Queues one step; never waits (a deque append under the GIL)."""
        self.pending.append((step, loss, skipped, elapsed))
        if len(self.pending) >= self._batch:
            self._wake.set()

    def finish(self, timeout: float):
        """Sends what waits and stops the thread (waits up to timeout)."""
        self._flush = True
        self._wake.set()
        self.join(timeout)

    def abandon(self):
        self._quit = True
        self._wake.set()
        self.join(5)

    # --- the thread ---

    def run(self):
        backoff = _FIRST_BACKOFF
        last_answer = last_sent = time.monotonic()
        while True:
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            if self._quit or self.over:
                return
            if not self.pending:
                if self._flush:
                    return
                if time.monotonic() - last_sent < self._report_interval:
                    continue
            request = self._request()
            last_sent = time.monotonic()
            try:
                answer = self._conn.stub.ReportLosses(
                    request, metadata=self._conn.metadata, timeout=_RPC_TIMEOUT)
            except grpc.RpcError as e:
                code = e.code()
                if code == grpc.StatusCode.FAILED_PRECONDITION:
                    code, details = self._rejoin()
                    if code is None:
                        last_answer = time.monotonic()
                        continue
                else:
                    details = e.details()
                # A coordinator going down cancels the calls in flight.
                if code not in (grpc.StatusCode.UNAVAILABLE,
                                grpc.StatusCode.DEADLINE_EXCEEDED,
                                grpc.StatusCode.CANCELLED):
                    self._fail(LrtuneError(code, details))
                    return
                if time.monotonic() - last_answer > self._give_up:
                    self._fail(LrtuneError(code, (
                        f"no answer for {self._give_up:.0f} s while reporting "
                        f"run {self._run_index} of job {self._job_id}: {details}")))
                    return
                self._wake.wait(backoff)  # finish() or abandon() cut it short
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            last_answer = time.monotonic()
            backoff = _FIRST_BACKOFF
            self._acknowledge(answer.acked_step)
            if answer.directive == client_run_pb2.RUN_DIRECTIVE_STOP:
                self.stopped_by_coordinator = True
                self.stop_reason = answer.stop_reason
                self.pending.clear()  # acknowledged and dropped
                self.over = True
                return

    def _request(self):
        request = client_run_pb2.ReportLossesRequest(
            run_id=self._run_id, attempt_id=self.attempt_id)
        pending = self.pending
        # Indexing, not iterating: the training thread may append meanwhile.
        for i in range(min(self._batch, len(pending))):
            step, loss, skipped, elapsed = pending[i]
            request.steps.add(step=step, loss=float(loss),
                              skipped_updates=skipped, elapsed_s=elapsed)
        return request

    def _acknowledge(self, acked: int):
        self.acked = max(self.acked, acked)
        pending = self.pending
        while pending and pending[0][0] <= self.acked:
            pending.popleft()

    def _rejoin(self):
        """Joins the run again after a lapsed lease: (None, "") when it has
        the run back, else (code, details) of the failure."""
        request = client_run_pb2.JoinRangeTestRequest(
            job_id=self._job_id, client_id=self._client_id,
            run_index=self._run_index)
        try:
            run = self._conn.stub.JoinRangeTest(
                request, metadata=self._conn.metadata, timeout=_RPC_TIMEOUT)
        except grpc.RpcError as e:
            return e.code(), e.details()
        if run.ended:
            self.stopped_by_coordinator = True
            self.stop_reason = run.end_reason
            self.pending.clear()
            self.over = True
            return None, ""
        self.attempt_id = run.attempt_id
        self._acknowledge(run.acked_step)
        return None, ""

    def _fail(self, error: LrtuneError):
        self.error = error
        self.stop_reason = str(error)
        self.over = True
