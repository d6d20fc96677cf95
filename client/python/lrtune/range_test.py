"""lrtune.RangeTest: an LR range test inside your own training loop.

    with lrtune.RangeTest(model, optimizer, end_lr=10, steps=100) as rt:
        for x, y in loader:                       # your loader, your model
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            if rt.step(loss):                     # after optimizer.step()
                break
    print(rt.result.min_lr, rt.result.max_lr)     # the Recommendation
    rt.plot()                                     # with matplotlib

The service steers, your loop trains: the coordinator hands out the plan
(the LR of every step: the range test's ramp) and applies the divergence
rule to the losses your loop reports; it stops the test, analyses the
curve and returns the same recommendation a worker-run test gives (bounds,
stepsize, 1cycle settings, suggestions, warnings, and across runs their
spread). The curve is stored as the job's events: `lrtune watch JOB`,
`lrtune get JOB --plot` read it.

- LR: before each optimizer update RangeTest sets every parameter group's
  LR to the plan's, keeping the groups' ratios (the group with the largest
  LR gets the plan's value).
- Steps are optimizer updates: call step(loss) once per batch (after
  backward, and after optimizer.step() on the batches that step); with
  accumulation_steps=k, every k-th call ends an update and reports the mean
  of its k losses. RangeTest counts optimizer.step() calls (it wraps the
  method while it runs): a boundary where the optimizer did not step (AMP's
  GradScaler skipped it for inf gradients) does not advance the LR and is
  reported as skipped on the next step's point.
- step(loss) never waits on the network: a background thread sends the
  losses in batches and resends after a dropped connection or a restarted
  coordinator (lrtune/_reporter.py); the coordinator's stop arrives
  asynchronously and step() returns True from then on.
- The model's and the optimizer's state are copied (in memory) when the test
  starts and restored when it ends, unless restore=False.
- Without server= (or $LRTUNE_SERVER) the test runs on this machine's
  embedded service (`lrtune serve`, lrtune/embedded.py); with it, on that
  coordinator, with token/token_file and tls_ca as the CLI.
- Several runs in one job: seeds=N (or a list of seed labels) opens a job of
  N runs; other processes (or later tests in this one) join it with
  job=rt.job_id. rt.seed is the run's seed label; rt.result waits until
  every run has ended and gives their aggregate with its spread.
- DDP (torch.distributed initialized with more than one process): one run
  for all ranks. Rank 0 opens the job and reports the mean over the ranks
  of each update's loss; every rank sets the same LR and stops at the same
  step (one all_reduce per update). `distributed=False` makes each process
  a test of its own (with job= and run_index=, the runs of one job).
"""

import copy
import math
import sys
import time
import uuid
from typing import Optional, Sequence, Union

import grpc

from lrtune import _reporter
from lrtune.client import JobFailedError, LrtuneError, RangeTestResult, _RAMPS, _result_from, _seed_list
from lrtune.connection import connect
from lrtune.v1 import client_run_pb2, jobs_pb2, lrtune_pb2, spec_pb2

_OPTIMIZER_KINDS = {"SGD": spec_pb2.OPTIMIZER_KIND_SGD,
                    "Adam": spec_pb2.OPTIMIZER_KIND_ADAM,
                    "AdamW": spec_pb2.OPTIMIZER_KIND_ADAMW,
                    "RMSprop": spec_pb2.OPTIMIZER_KIND_RMSPROP}


def optimizer_momentum(optimizer) -> float:
    """The momentum the analysis reads (AnalysisOptions.momentum): the first
    group's `momentum` (SGD, RMSprop) or betas[0] (Adam-style), else 0."""
    group = optimizer.param_groups[0]
    if "betas" in group:
        return float(group["betas"][0])
    return float(group.get("momentum", 0.0) or 0.0)


class RangeTest:
    """See the module's docstring. Arguments (None: the service's default):

    start_lr=1e-7, end_lr=10, steps=100, ramp="exp"|"linear": the plan.
    accumulation_steps=1: step(loss) calls per optimizer update.
    iters_per_epoch: optimizer updates per epoch, for the stepsize (pass
        len(loader) // accumulation_steps); unknown: the stepsize is k x 1.
    seeds=1: runs of a new job (a count, or their seed labels).
    job, run_index: join that job's run (default: the next free one); the
        job's plan and analysis hold, and the arguments above that shape a
        new job (the plan, seeds, iters_per_epoch, the analysis's) are not
        read.
    server, token, token_file, tls_ca, tls_server_name: as lrtune.connect;
        db: the embedded service's store; ui=False: the embedded service
        serves its web dashboard too, the curve live at rt.dashboard_url
        (printed to stderr when the test starts).
    restore=True: put the model and optimizer back as they were.
    smoothing_beta, divergence_factor, stepsize_k: the analysis; momentum:
        the optimizer's (default: read from its first group).
    distributed=None: DDP mode when torch.distributed runs with more than
        one process; True or False to choose.
    flush_interval=0.1, batch_steps=256: how often losses are sent.
    give_up_after=120: seconds without an answer before the test fails.
    max_skipped=1000: consecutive updates skipped before step() raises
        (step(loss) called where the optimizer never steps).
    """

    def __init__(self, model, optimizer, *, start_lr: float = 1e-7,
                 end_lr: float = 10.0, steps: int = 100, ramp: str = "exp",
                 accumulation_steps: int = 1,
                 iters_per_epoch: Optional[int] = None,
                 seeds: Union[int, Sequence[int]] = 1,
                 job: Optional[str] = None, run_index: Optional[int] = None,
                 server: Optional[str] = None, token: Optional[str] = None,
                 token_file: Optional[str] = None,
                 tls_ca: Optional[str] = None,
                 tls_server_name: Optional[str] = None,
                 db: Optional[str] = None, ui: bool = False,
                 restore: bool = True,
                 smoothing_beta: Optional[float] = None,
                 divergence_factor: Optional[float] = None,
                 stepsize_k: Optional[int] = None,
                 momentum: Optional[float] = None,
                 distributed: Optional[bool] = None,
                 flush_interval: float = 0.1, batch_steps: int = 256,
                 give_up_after: float = 120.0, max_skipped: int = 1000):
        if ramp not in _RAMPS:
            raise ValueError(f"ramp must be one of {sorted(_RAMPS)}, got {ramp!r}")
        if accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}")
        seeds = _seed_list(seeds)
        self.model = model
        self.optimizer = optimizer
        self._spec = dict(start_lr=start_lr, end_lr=end_lr, steps=steps,
                          ramp=ramp, iters_per_epoch=iters_per_epoch,
                          seeds=seeds, smoothing_beta=smoothing_beta,
                          divergence_factor=divergence_factor,
                          stepsize_k=stepsize_k, momentum=momentum)
        self._job = job
        self._run_index = run_index
        self._connect_args = dict(server=server, token=token,
                                  token_file=token_file, tls_ca=tls_ca,
                                  tls_server_name=tls_server_name, db=db,
                                  ui=ui)
        self._restore = restore
        self._distributed = distributed
        self._accumulation = accumulation_steps
        self._flush_interval = flush_interval
        self._batch_steps = batch_steps
        self._give_up = give_up_after
        self._max_skipped = max_skipped
        self._client_id = f"py-{uuid.uuid4().hex[:16]}"
        self._started = False
        self._closed = False
        self._conn = None
        self._reporter = None
        self._run = None
        self._result = None
        self._job_proto = None
        self.run_recommendation = None  # the run's own (EndRun's answer)
        self.end_reason = ""
        self.losses = []  # (step, lr, loss) this process applied, for plot()
        self.dashboard_url = None  # the job's page, with ui=True

    # --- context manager ---

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.close(failure=f"{exc_type.__name__}: {exc}")
        return False

    # --- the test ---

    def start(self):
        """Opens (or joins) the job, takes a run, saves the state and sets
        the first step's LR. The context manager calls it."""
        if self._started:
            raise RuntimeError("RangeTest.start() was called before")
        self._started = True
        import torch
        self._torch = torch
        dist = torch.distributed
        if self._distributed is None:
            self._distributed = (dist.is_available() and dist.is_initialized()
                                 and dist.get_world_size() > 1)
        self._rank = dist.get_rank() if self._distributed else 0
        self._world = dist.get_world_size() if self._distributed else 1
        opened = None
        if self._rank == 0:
            try:
                opened = self._open()
            except Exception as e:  # told to every rank, raised on each
                opened = e
        if self._distributed:
            box = [opened if self._rank == 0 else None]
            dist.broadcast_object_list(box, src=0)
            opened = box[0]
        if isinstance(opened, Exception):
            raise opened
        self.job_id, self.run_index, self.seed, self.lrs, acked = opened
        self.start_time = time.monotonic()
        self._step = acked + 1  # a rejoined run continues
        self._micro = 0
        self._loss_sum = None
        self._skipped = 0
        self._skipped_in_a_row = 0
        self._done = self._step >= len(self.lrs)
        self._stop_flag = None
        if self._restore:
            self._saved = (copy.deepcopy(self.model.state_dict()),
                           copy.deepcopy(self.optimizer.state_dict()))
        base = [float(g["lr"]) for g in self.optimizer.param_groups]
        top = max(base)
        self._ratios = [b / top if top > 0 else 1.0 for b in base]
        self._count_updates()
        self._set_lr(self._step)
        if self._reporter is not None:
            self._reporter.start()
        return self

    def _open(self):
        """Rank 0: connect, submit unless joining, join a run."""
        self._conn = connect(**self._connect_args)
        if self._job is None:
            self._job = self._submit()
        request = client_run_pb2.JoinRangeTestRequest(
            job_id=self._job, client_id=self._client_id)
        if self._run_index is not None:
            request.run_index = self._run_index
        run = self._call(self._conn.stub.JoinRangeTest, request)
        self.dashboard_url = self._conn.dashboard_page(run.job_id)
        if self.dashboard_url is not None:
            print(f"lrtune: dashboard at {self.dashboard_url}", file=sys.stderr,
                  flush=True)
        if run.ended:
            raise LrtuneError(grpc.StatusCode.FAILED_PRECONDITION,
                              f"run {run.run_index} of job {run.job_id} is over: "
                              f"{run.end_reason}")
        self._run = run
        self._reporter = _reporter.Reporter(
            self._conn, run, self._client_id,
            flush_interval=self._flush_interval,
            batch_steps=self._batch_steps, give_up_after=self._give_up)
        return run.job_id, run.run_index, run.seed, list(run.plan.lrs), run.acked_step

    def _submit(self) -> str:
        s = self._spec
        seeds = s["seeds"]
        rt = spec_pb2.RangeTestSpec(
            start_lr=s["start_lr"], end_lr=s["end_lr"], steps=s["steps"],
            shape=_RAMPS[s["ramp"]], seeds=seeds,
            driver=spec_pb2.RANGE_DRIVER_CLIENT)
        momentum = s["momentum"]
        rt.analysis.momentum = (optimizer_momentum(self.optimizer)
                                if momentum is None else momentum)
        for name in ("iters_per_epoch", "smoothing_beta", "divergence_factor",
                     "stepsize_k"):
            if s[name] is not None:
                setattr(rt.analysis, name, s[name])
        run = spec_pb2.RunSpec()
        kind = _OPTIMIZER_KINDS.get(type(self.optimizer).__name__)
        if kind is not None:
            run.optimizer.kind = kind
        request = lrtune_pb2.SubmitJobRequest(
            range_test=jobs_pb2.RangeTestJob(run=run, range_test=rt),
            request_id=f"py-{uuid.uuid4().hex}")
        return self._call(self._conn.stub.SubmitJob, request).job_id

    def _call(self, method, request):
        try:
            return method(request, metadata=self._conn.metadata, timeout=30)
        except grpc.RpcError as e:
            raise LrtuneError(e.code(), e.details()) from None

    def _count_updates(self):
        """Wraps optimizer.step to count the updates it applies (GradScaler
        calls it only when the gradients are finite)."""
        opt = self.optimizer
        self._had_step_attr = "step" in opt.__dict__
        self._old_step_attr = opt.__dict__.get("step")
        inner = opt.step
        self._updates = 0
        self._updates_seen = 0

        def counted_step(*args, **kwargs):
            self._updates += 1
            return inner(*args, **kwargs)

        opt.step = counted_step

    def _uncount_updates(self):
        opt = self.optimizer
        if self._had_step_attr:
            opt.step = self._old_step_attr
        else:
            opt.__dict__.pop("step", None)

    def _set_lr(self, step: int):
        lr = self.lrs[min(step, len(self.lrs) - 1)]
        for group, ratio in zip(self.optimizer.param_groups, self._ratios):
            group["lr"] = lr * ratio

    @property
    def lr(self) -> float:
        """The plan's LR for the next update."""
        return self.lrs[min(self._step, len(self.lrs) - 1)]

    @property
    def done(self) -> bool:
        """The test is over: the plan is done or the coordinator stopped it."""
        return self._done

    @property
    def stop_reason(self) -> str:
        return self._reporter.stop_reason if self._reporter is not None else ""

    def step(self, loss) -> bool:
        """Call once per batch, after backward (and after optimizer.step()
        on the batches that step). `loss` is the batch's loss (a tensor or a
        number, as used for backward; divide by accumulation_steps or not,
        as long as every batch is treated alike). Returns True once the
        test is over: leave the loop then."""
        if not self._started:
            raise RuntimeError("RangeTest.step() before the test started: use "
                               "`with lrtune.RangeTest(...) as rt:` or rt.start()")
        if self._done:
            return True
        # A number at once on the CPU (item() costs ~1 us there); a CUDA
        # loss stays a tensor, read by the reporter thread, so that the
        # loop never waits for the GPU.
        value = loss.detach() if getattr(loss, "is_cuda", False) else float(loss)
        self._loss_sum = value if self._loss_sum is None else self._loss_sum + value
        self._micro += 1
        if self._micro < self._accumulation:
            return False
        self._micro = 0
        mean, self._loss_sum = self._loss_sum, None
        if self._accumulation > 1:
            mean = mean / self._accumulation
        updated = self._updates != self._updates_seen
        self._updates_seen = self._updates
        stop = False
        if self._distributed:
            mean, stop = self._agree(mean)
        if updated or not math.isfinite(float(mean) if not updated else 0.0):
            # An update applied at the plan's LR, or one that could not be
            # (a non-finite loss): a point of the curve.
            self._skipped_in_a_row = 0
            if self._reporter is not None:
                self._reporter.add(self._step, mean, self._skipped,
                                   time.monotonic() - self.start_time)
            self.losses.append((self._step, self.lrs[self._step], mean))
            self._skipped = 0
            self._step += 1
            if self._step >= len(self.lrs):
                self._done = True
            else:
                self._set_lr(self._step)
        else:
            self._skipped += 1
            self._skipped_in_a_row += 1
            if self._skipped_in_a_row > self._max_skipped:
                raise RuntimeError(
                    f"optimizer.step() was not called for {self._max_skipped} "
                    "updates in a row: call rt.step(loss) once per batch after "
                    "optimizer.step(), with accumulation_steps set to the "
                    "batches per update")
        if self._reporter is not None and self._reporter.over:
            stop = True if not self._distributed else stop
        if stop:
            self._done = True
        return self._done

    def _agree(self, mean):
        """DDP: the mean loss over the ranks and whether rank 0 heard STOP
        (or failed), in one all_reduce, so every rank stops at one step."""
        torch = self._torch
        stop = 1.0 if (self._reporter is not None and self._reporter.over) else 0.0
        t = torch.tensor([float(mean), stop], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t[0]) / self._world, bool(t[1] > 0)

    def close(self, failure: Optional[str] = None):
        """Ends this process's part: sends every step, ends the run unless
        the coordinator did (the curve so far is analysed; with `failure`
        the run fails with it), restores the model and optimizer (unless
        restore=False). The context manager calls it. Raises LrtuneError
        when the run failed on the service's side."""
        if self._closed or not self._started:
            return
        self._closed = True
        self._uncount_updates()
        if self._restore:
            self.model.load_state_dict(self._saved[0])
            self.optimizer.load_state_dict(self._saved[1])
        error = None
        if self._reporter is not None:
            error = self._end(failure)
        if self._distributed:
            box = [(self.end_reason, self._job_proto, error)
                   if self._rank == 0 else None]
            self._torch.distributed.broadcast_object_list(box, src=0)
            self.end_reason, self._job_proto, error = box[0]
        if error is not None and failure is None:
            raise error

    def _end(self, failure):
        rep = self._reporter
        if failure is not None:
            rep.abandon()
        else:
            rep.finish(timeout=self._give_up + 5)
        if rep.error is not None:
            return rep.error
        request = client_run_pb2.EndRunRequest(
            run_id=self._run.run_id, attempt_id=rep.attempt_id,
            final_step=rep.acked, failure=failure or "")
        try:
            ended = self._call(self._conn.stub.EndRun, request)
        except LrtuneError as e:
            if e.code != grpc.StatusCode.FAILED_PRECONDITION:
                return e
            code, details = rep._rejoin()  # the lease lapsed meanwhile
            if code is not None:
                return LrtuneError(code, details)
            request.attempt_id = rep.attempt_id
            try:
                ended = self._call(self._conn.stub.EndRun, request)
            except LrtuneError as again:
                return again
        # The coordinator's own words when it stopped the run.
        self.end_reason = (rep.stop_reason if rep.stopped_by_coordinator
                           else ended.end_reason)
        if ended.HasField("recommendation"):
            self.run_recommendation = ended.recommendation
        # The job's result when this was its last run (one GetJob).
        job = self._call(self._conn.stub.GetJob,
                         lrtune_pb2.GetJobRequest(job_id=self.job_id))
        if job.state >= jobs_pb2.JOB_STATE_SUCCEEDED:
            self._job_proto = job.SerializeToString()
        return None

    @property
    def result(self) -> RangeTestResult:
        """The job's recommendation (every run's aggregate): waits until
        every run has ended. Raises JobFailedError when the job failed or
        was cancelled."""
        if self._result is not None:
            return self._result
        if not self._closed:
            raise RuntimeError("rt.result is there once the test has ended "
                               "(after the `with` block, or close())")
        if self._job_proto is not None:
            job = jobs_pb2.Job.FromString(self._job_proto)
        elif self._conn is not None:
            job = self._wait_for_job()
        else:
            raise RuntimeError("the job had runs left when rank 0 closed; "
                               "read rt.result on rank 0")
        if job.state != jobs_pb2.JOB_STATE_SUCCEEDED:
            raise JobFailedError(job.job_id, jobs_pb2.JobState.Name(job.state),
                                 job.failure or "no reason given")
        self._result = _result_from(job)
        return self._result

    def _wait_for_job(self):
        request = lrtune_pb2.WatchJobRequest(job_id=self.job_id, skip_points=True)
        for attempt in range(8):
            try:
                for event in self._conn.stub.WatchJob(request, metadata=self._conn.metadata):
                    request.after_seq = event.seq
                break
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or attempt == 7:
                    raise LrtuneError(e.code(), e.details()) from None
                time.sleep(0.2 * 2 ** attempt)
        return self._call(self._conn.stub.GetJob,
                          lrtune_pb2.GetJobRequest(job_id=self.job_id))

    def plot(self, ax=None, show_bounds: bool = True):
        """Draws this process's curve (loss against LR, log scale, with the
        curve the analysis read the bounds from) and the bounds, as
        torch-lr-finder's plot(); returns the matplotlib Axes. Needs
        matplotlib (`apt install python3-matplotlib`)."""
        from lrtune import plot
        return plot.plot_range_test(self, ax=ax, show_bounds=show_bounds)
