"""The LrTune service from Python: range tests of built-in or own models.

    client = lrtune.Client("127.0.0.1:50051", token=None)
    result = client.range_test_module(model, x, y, steps=100,
                                      on_point=lambda s, lr, loss: ...)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=result.one_cycle["max_lr"],
        div_factor=result.one_cycle["div_factor"], total_steps=...)

Every failed RPC raises LrtuneError carrying the gRPC code and the server's
message (which names the field: "run.batch_size must be >= 1, got 0"). A
job that is accepted but then fails or is cancelled raises JobFailedError.
A stream cut by UNAVAILABLE is resumed with WatchJob from the last seq seen,
so no point is lost or repeated. A Client is safe to share between threads
(gRPC channels are); close() or `with` releases the channel.
"""

import dataclasses
import io
import math
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import grpc

from lrtune.v1 import jobs_pb2, lrtune_pb2, lrtune_pb2_grpc, schedule_pb2, spec_pb2

_MAX_MESSAGE = 64 << 20  # the server's default request limit
_RESUME_ATTEMPTS = 8     # UNAVAILABLE retries in a row before giving up


def _lowercase_names(enum) -> Dict[str, int]:
    """An enum's values by the CLI's names, as spec files take them
    (client/job_spec.cc): MODEL_KIND_MLP is "mlp", LOSS_KIND_CROSS_ENTROPY
    "cross_entropy"; the UNSPECIFIED value has none."""
    values = enum.DESCRIPTOR.values
    prefix = values[0].name[:-len("UNSPECIFIED")]
    return {v.name[len(prefix):].lower(): v.number for v in values[1:]}


_MODELS = {k: v for k, v in _lowercase_names(spec_pb2.ModelKind).items()
           if k != "torchscript"}  # range_test_module sends TorchScript
_LOSSES = _lowercase_names(spec_pb2.LossKind)
_OPTIMIZERS = _lowercase_names(spec_pb2.OptimizerKind)
_RAMPS = _lowercase_names(schedule_pb2.RampShape)
_METRICS = _lowercase_names(spec_pb2.RangeMetric)  # train_loss, val_loss, ...


def _seed_list(seeds: Union[int, Sequence[int]]) -> List[int]:
    """The seeds of a range test: a count N as [0, N), or the labels given.
    An empty list would mean the server's default of one seed, so a count
    below 1 or an empty list is refused (ValueError) rather than sent."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("seeds must be a count >= 1 or a non-empty list of "
                         f"seed labels, got {seeds!r}")
    return seed_list


class LrtuneError(Exception):
    """An RPC failed. `code` is the grpc.StatusCode (None when the failure is
    not an RPC status); `details` is the server's message."""

    def __init__(self, code: Optional[grpc.StatusCode], details: str):
        self.code = code
        self.details = details
        name = code.name if code is not None else "ERROR"
        super().__init__(f"{name}: {details}")


class JobFailedError(LrtuneError):
    """The job was accepted but ended FAILED or CANCELLED. `job_id`, `state`
    (a name such as "JOB_STATE_FAILED") and the reason in `details`."""

    def __init__(self, job_id: str, state: str, reason: str):
        self.job_id = job_id
        self.state = state
        super().__init__(None, f"job {job_id} {state}: {reason}")


@dataclasses.dataclass(frozen=True)
class Point:
    """One step of a range-test curve."""
    seed_index: int
    step: int
    lr: float
    loss: float
    smoothed: float


@dataclasses.dataclass
class RangeTestResult:
    """The aggregate recommendation of a range test.

    min_lr/max_lr are the CLR bounds (both 0 when the loss never decreased:
    see warnings). suggestions maps fastai's "valley", "slide", "minimum"
    (already / 10) and "steep" (what fastai's lr_find returns on the same
    points) and lrtune's zero-lag "steepest" and "lowest" to an LR (absent:
    the curve gives none). one_cycle holds OneCycleLR's
    max_lr, div_factor, final_div_factor, pct_start, base_momentum,
    max_momentum. max_lr_interval is (smallest, largest) of the seeds'
    max_lr and spread_decades the seeds' spread: how much to trust max_lr.
    warnings are (code, message) pairs. job is the final
    lrtune.v1.Job proto; recommendation the aggregate Recommendation proto
    (both left out of repr: they hold the curve's points). str() is the
    summary `lrtune range-test` prints.
    """
    job_id: str
    min_lr: float
    max_lr: float
    stepsize_iterations: int
    stepsize_epochs: float
    suggestions: Dict[str, float]
    one_cycle: Dict[str, float]
    max_lr_interval: tuple
    spread_decades: float
    warnings: List[tuple]
    points: int
    recommendation: Any = dataclasses.field(repr=False)
    job: Any = dataclasses.field(repr=False)

    def __str__(self) -> str:
        return (f"range test {self.job_id}: {self.points} points\n"
                + format_recommendation(self.recommendation)).rstrip("\n")


def _lr(message, name: str) -> str:
    if name.startswith("lr_") and not message.HasField(name):
        return "-"
    v = getattr(message, name)
    return "%.3g" % v if math.isfinite(v) else "-"


def format_recommendation(rec) -> str:
    """A Recommendation proto as `lrtune range-test` prints it
    (core/recommendation_format.cc, FormatRecommendation)."""
    lines = ["  CLR bounds      min_lr %s   max_lr %s"
             % (_lr(rec, "min_lr"), _lr(rec, "max_lr"))]
    if rec.stepsize_epochs > 0:
        lines.append("  stepsize        %d iterations (%.3g epochs)"
                     % (rec.stepsize_iterations, rec.stepsize_epochs))
    else:
        lines.append("  stepsize        %d iterations (give iterations per "
                     "epoch for epochs)" % rec.stepsize_iterations)
    lines.append("  fastai          valley %s   steep %s   minimum/10 %s   "
                 "slide %s" % tuple(_lr(rec, "lr_" + n) for n in (
                     "valley", "steep", "minimum", "slide")))
    lines.append("  zero-lag        steepest %s   lowest %s"
                 % (_lr(rec, "lr_steepest"), _lr(rec, "lr_lowest")))
    oc = rec.one_cycle
    lines.append("  1cycle          max_lr %s  div_factor %.3g  "
                 "final_div_factor %.3g  pct_start %.2g  momentum %.2f..%.2f"
                 % (_lr(oc, "max_lr"), oc.div_factor, oc.final_div_factor,
                    oc.pct_start, oc.base_momentum, oc.max_momentum))
    many = rec.seeds > 1
    diverged = rec.diverged_at if rec.HasField("diverged_at") else -1
    if diverged < 0:
        how = "; none diverged" if many else "never diverged"
    elif many:
        how = "; first divergence at point %d" % diverged
    else:
        how = "diverged at point %d" % diverged
    lines.append("  points used     %d%s%s)" % (
        rec.points_used, " (fewest of the seeds" if many else " (", how))
    if many:
        lines.append("  seeds           %d, spread %.2f decades, max_lr %s..%s"
                     % (rec.seeds, rec.spread_decades, _lr(rec, "max_lr_low"),
                        _lr(rec, "max_lr_high")))
    for w in rec.warnings:
        lines.append("  warning         [%s] %s" % (w.code, w.message))
    return "\n".join(lines) + "\n"


def _result_from(job) -> RangeTestResult:
    rec = job.range_test_result.recommendation
    suggestions = {name: getattr(rec, "lr_" + name)
                   for name in ("valley", "slide", "minimum", "steep",
                                "steepest", "lowest")
                   if rec.HasField("lr_" + name)}
    oc = rec.one_cycle
    one_cycle = {f: getattr(oc, f) for f in (
        "max_lr", "div_factor", "final_div_factor", "pct_start",
        "base_momentum", "max_momentum")}
    return RangeTestResult(
        job_id=job.job_id, min_lr=rec.min_lr, max_lr=rec.max_lr,
        stepsize_iterations=rec.stepsize_iterations,
        stepsize_epochs=rec.stepsize_epochs, suggestions=suggestions,
        one_cycle=one_cycle,
        max_lr_interval=(rec.max_lr_low, rec.max_lr_high),
        spread_decades=rec.spread_decades,
        warnings=[(w.code, w.message) for w in rec.warnings],
        points=job.range_test_result.steps_run, recommendation=rec, job=job)


class RangeTestStream:
    """Iterates over a range test's points as they arrive; `result` (a
    RangeTestResult) is set once the iteration ends. Raises LrtuneError or
    JobFailedError from the iteration."""

    def __init__(self, client: "Client", request):
        self._client = client
        self._request = request
        self.job_id: Optional[str] = None
        self.result: Optional[RangeTestResult] = None

    def __iter__(self) -> Iterator[Point]:
        first = lambda: self._client._stub.RangeTest(  # noqa: E731
            self._request, metadata=self._client._metadata)
        terminal = None
        for event in self._client._follow(first, None, 0, self._request.skip_points,
                                          self):
            kind = event.WhichOneof("event")
            if kind == "point":
                p = event.point.point
                yield Point(p.seed_index, p.step, p.lr, p.loss, p.smoothed)
            elif kind == "state_changed":
                terminal = event.state_changed
        job = self._client.get(self.job_id)
        if terminal is None or terminal.state != jobs_pb2.JOB_STATE_SUCCEEDED:
            reason = terminal.reason if terminal is not None else job.failure
            raise JobFailedError(self.job_id, jobs_pb2.JobState.Name(job.state),
                                 reason or "no reason given")
        self.result = _result_from(job)


class Client:
    """A connection to one lrtune-server. target is HOST:PORT; token, when
    given, is sent as `authorization: Bearer <token>`; credentials, when
    given (grpc.ssl_channel_credentials(...)), makes the channel TLS."""

    def __init__(self, target: str = "127.0.0.1:50051", token: Optional[str] = None,
                 credentials: Optional[grpc.ChannelCredentials] = None):
        options = [("grpc.max_send_message_length", _MAX_MESSAGE),
                   ("grpc.max_receive_message_length", _MAX_MESSAGE)]
        self.target = target
        if credentials is not None:
            self._channel = grpc.secure_channel(target, credentials, options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        self._stub = lrtune_pb2_grpc.LrTuneStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- range tests ---

    def range_test(self, model: str = "mlp", dataset: str = "fashion-mnist", *,
                   hidden: Sequence[int] = (), subset: int = 0,
                   on_point: Optional[Callable[[int, float, float], None]] = None,
                   **options) -> RangeTestResult:
        """A range test of a built-in model ("mlp", "cnn", "resnet20") on a
        built-in data set ("fashion-mnist", "digits", "iris", "wine",
        "breast-cancer", "spirals", "blobs", "linear"). options are those of
        range_test_module. Returns the recommendation; raises LrtuneError."""
        if model not in _MODELS:
            raise ValueError(f"model must be one of {sorted(_MODELS)}, got {model!r}")
        m = spec_pb2.ModelSpec(kind=_MODELS[model], hidden=list(hidden))
        data = spec_pb2.DataSpec(name=dataset, subset=subset)
        return self._run(self._request(m, data, **options), on_point)

    def range_test_module(self, module, x, y, *, on_point=None,
                          **options) -> RangeTestResult:
        """A range test of a torch.nn.Module on tensors x (float, [N, ...])
        and y (int64 class labels for cross_entropy, float targets for mse),
        all sent with the request. on_point(step, lr, loss) is called for
        every point as it arrives. Options (server defaults when unset):
        loss="cross_entropy", optimizer="sgd", momentum=0.9,
        weight_decay=None, batch_size=128, start_lr=1e-7, end_lr=10,
        steps=100, ramp="exp", seeds=1 (a count, or a list of seeds),
        device="auto", threads=0, validation_fraction=None,
        smoothing_beta=None, divergence_factor=None, metric="train_loss"
        (or "val_loss", "val_accuracy": Smith's test on evaluations every
        eval_every steps, default steps // 60, of eval_samples samples),
        max_attempts=None, request_id="". Returns a RangeTestResult; raises
        LrtuneError
        (INVALID_ARGUMENT naming the field, RESOURCE_EXHAUSTED, ...) or
        JobFailedError."""
        return self._run(self.module_request(module, x, y, **options), on_point)

    def range_test_module_stream(self, module, x, y, **options) -> RangeTestStream:
        """As range_test_module, but returns an iterable of Points; its
        `result` is set when the iteration ends."""
        return RangeTestStream(self, self.module_request(module, x, y, **options))

    def module_request(self, module, x, y, **options):
        """The RangeTestRequest range_test_module sends (for submit())."""
        m = spec_pb2.ModelSpec(kind=spec_pb2.MODEL_KIND_TORCHSCRIPT,
                               torchscript=script_module(module, x))
        data = spec_pb2.DataSpec(inline_data=inline_data(x, y))
        return self._request(m, data, **options)

    def _run(self, request, on_point) -> RangeTestResult:
        stream = RangeTestStream(self, request)
        for p in stream:
            if on_point is not None:
                on_point(p.step, p.lr, p.loss)
        return stream.result

    @staticmethod
    def _request(model, data, *, loss="cross_entropy", optimizer="sgd",
                 momentum=0.9, weight_decay=None, batch_size=128, start_lr=1e-7,
                 end_lr=10.0, steps=100, ramp="exp",
                 seeds: Union[int, Sequence[int]] = 1, device="auto", threads=0,
                 validation_fraction=None, smoothing_beta=None,
                 divergence_factor=None, metric="train_loss", eval_every=None,
                 eval_samples=None, max_attempts=None, request_id="",
                 skip_points=False):
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {sorted(_LOSSES)}, got {loss!r}")
        if optimizer not in _OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {sorted(_OPTIMIZERS)}, got {optimizer!r}")
        if ramp not in _RAMPS:
            raise ValueError(f"ramp must be one of {sorted(_RAMPS)}, got {ramp!r}")
        if metric not in _METRICS:
            raise ValueError(
                f"metric must be one of {sorted(_METRICS)}, got {metric!r}")
        if validation_fraction is not None:
            data.validation_fraction = validation_fraction
        opt = spec_pb2.OptimizerSpec(kind=_OPTIMIZERS[optimizer])
        if momentum is not None and optimizer in ("sgd", "rmsprop"):
            opt.momentum = momentum
        if weight_decay is not None:
            opt.weight_decay = weight_decay
        # Values go to the server as given: it validates and names the field.
        run = spec_pb2.RunSpec(model=model, data=data, optimizer=opt,
                               loss=_LOSSES[loss], batch_size=batch_size,
                               device=spec_pb2.DeviceOptions(device=device,
                                                             threads=threads))
        seed_list = _seed_list(seeds)
        rt = spec_pb2.RangeTestSpec(start_lr=start_lr, end_lr=end_lr, steps=steps,
                                    shape=_RAMPS[ramp], seeds=seed_list)
        if smoothing_beta is not None:
            rt.analysis.smoothing_beta = smoothing_beta
        if divergence_factor is not None:
            rt.analysis.divergence_factor = divergence_factor
        rt.metric = _METRICS[metric]
        if metric != "train_loss":
            rt.eval_every = max(1, steps // 60)  # as the CLI: ~60 evaluations
        if eval_every is not None:
            rt.eval_every = eval_every
        if eval_samples is not None:
            rt.eval_samples = eval_samples
        req = lrtune_pb2.RangeTestRequest(run=run, range_test=rt,
                                          request_id=request_id,
                                          skip_points=skip_points)
        if max_attempts is not None:
            req.max_attempts = max_attempts
        return req

    # --- jobs ---

    def submit(self, request, request_id: str = "", max_attempts=None):
        """Submits a RangeTestRequest (from module_request), a RangeTestJob or
        a GridSearchJob without waiting; returns the QUEUED lrtune.v1.Job."""
        req = lrtune_pb2.SubmitJobRequest(request_id=request_id)
        if isinstance(request, lrtune_pb2.RangeTestRequest):
            req.range_test.run.CopyFrom(request.run)
            req.range_test.range_test.CopyFrom(request.range_test)
            req.request_id = request_id or request.request_id
            if request.HasField("max_attempts"):
                req.max_attempts = request.max_attempts
        elif isinstance(request, jobs_pb2.RangeTestJob):
            req.range_test.CopyFrom(request)
        elif isinstance(request, jobs_pb2.GridSearchJob):
            req.grid.CopyFrom(request)
        else:
            raise TypeError(f"cannot submit a {type(request).__name__}")
        if max_attempts is not None:
            req.max_attempts = max_attempts
        return self._call(self._stub.SubmitJob, req)

    def get(self, job_id: str):
        """The lrtune.v1.Job with its attempts and result."""
        return self._call(self._stub.GetJob, lrtune_pb2.GetJobRequest(job_id=job_id))

    def cancel(self, job_id: str, reason: str = ""):
        """Cancels a queued or running job; returns the job."""
        return self._call(self._stub.CancelJob,
                          lrtune_pb2.CancelJobRequest(job_id=job_id, reason=reason))

    def list(self, page_size: int = 0, page_token: str = ""):
        """One page of the caller's jobs: a ListJobsResponse."""
        return self._call(self._stub.ListJobs, lrtune_pb2.ListJobsRequest(
            page_size=page_size, page_token=page_token))

    def watch(self, job_id: str, after_seq: int = 0,
              skip_points: bool = False) -> Iterator[Any]:
        """Yields the job's JobEvents with seq > after_seq until the terminal
        one, resuming after UNAVAILABLE from the last seq seen."""
        return self._follow(None, job_id, after_seq, skip_points, None)

    def _call(self, method, request):
        try:
            return method(request, metadata=self._metadata)
        except grpc.RpcError as e:
            raise LrtuneError(e.code(), e.details()) from None

    def _follow(self, first, job_id, after_seq, skip_points, holder):
        """Events of `first()` (a RangeTest stream) or of WatchJob(job_id),
        resumed with WatchJob after UNAVAILABLE. holder.job_id is set from the
        accepted event."""
        last = after_seq
        failures = 0
        while True:
            if first is not None:
                stream, first = first(), None
            else:
                stream = self._stub.WatchJob(
                    lrtune_pb2.WatchJobRequest(job_id=job_id, after_seq=last,
                                               skip_points=skip_points),
                    metadata=self._metadata)
            try:
                for event in stream:
                    failures = 0
                    last = event.seq
                    if job_id is None:
                        job_id = event.job_id
                        if holder is not None:
                            holder.job_id = job_id
                    yield event
                    if event.WhichOneof("event") == "state_changed" and \
                            event.state_changed.state >= jobs_pb2.JOB_STATE_SUCCEEDED:
                        return
                return
            except grpc.RpcError as e:
                failures += 1
                if (e.code() != grpc.StatusCode.UNAVAILABLE or job_id is None
                        or failures > _RESUME_ATTEMPTS):
                    raise LrtuneError(e.code(), e.details()) from None
                time.sleep(min(0.1 * 2 ** failures, 5.0))
            finally:
                if hasattr(stream, "cancel"):
                    stream.cancel()


def script_module(module, x) -> bytes:
    """torch.jit.save bytes of module: scripted, or traced on x[:2] when it
    cannot be scripted (data-dependent Python control flow is then frozen)."""
    import torch
    if isinstance(module, torch.jit.ScriptModule):
        scripted = module
    else:
        try:
            scripted = torch.jit.script(module)
        except Exception:  # scripting fails on unsupported Python: trace
            with torch.no_grad():
                scripted = torch.jit.trace(module, torch.as_tensor(x[:2]).float())
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    return buf.getvalue()


def inline_data(x, y):
    """An InlineData of x (float32, [N, ...]) and y: int labels become
    y_labels, float targets y_targets (with y_target_width for [N, k])."""
    import torch
    x = torch.as_tensor(x).detach().to("cpu", torch.float32).contiguous()
    y = torch.as_tensor(y).detach().to("cpu")
    if x.dim() < 2:
        raise ValueError(f"x must be [N, ...] with 2..5 dims, got shape {list(x.shape)}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
    data = spec_pb2.InlineData(x_shape=list(x.shape))
    data.x.extend(x.reshape(-1).numpy().tolist())
    if y.dtype.is_floating_point:
        data.y_targets.extend(y.to(torch.float32).reshape(-1).numpy().tolist())
        width = 1
        for d in y.shape[1:]:
            width *= d
        data.y_target_width = width
    else:
        data.y_labels.extend(y.to(torch.int64).reshape(-1).numpy().tolist())
    return data
