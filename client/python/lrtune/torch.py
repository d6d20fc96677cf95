"""lrtune.torch.scheduler: every lrtune schedule as a PyTorch LR scheduler.

    sched = lrtune.torch.scheduler(optimizer, rt.result, total_steps=10000)
    sched = lrtune.torch.scheduler(optimizer, {"kind": "rex", "base_lr": 0.1,
                                               "total_steps": 1000,
                                               "sample_every": 10})
    for batch in loader:
        ...; optimizer.step(); sched.step()

The values are lrtune's own, value for value: the scheduler asks the
`lrtune` binary (`lrtune schedule ... --csv`, core/schedule.h: PyTorch's
formulas, and REX, WSD, sample_every and the rest that PyTorch lacks) for
the whole schedule once, then hands out step t's LR (and momentum, or Adam's
beta1, where the schedule cycles it) after t calls of step(), as
torch.optim.lr_scheduler does. Parameter groups keep their ratios: the
group with the largest LR gets the schedule's value. Past the values asked
for, the last one holds.

`schedule` is one of:
- a dict of the CLI's parameters (`lrtune schedule --help`: kind, base_lr,
  max_lr, total_steps, ...; True/False for flags, lists for milestones);
- a lrtune.v1.ScheduleSpec (e.g. a Recommendation's schedules.one_cycle);
- a RangeTestResult or a Recommendation: its recommended schedule `kind`
  ("one_cycle", "triangular", "sgdr" or "rex"), over total_steps.
"""

import subprocess
from typing import List, Optional, Tuple

import torch as _torch
from google.protobuf import json_format

from lrtune.embedded import find_binary
from lrtune.v1 import results_pb2, schedule_pb2

try:
    _Base = _torch.optim.lr_scheduler.LRScheduler  # torch >= 2.0
except AttributeError:
    _Base = _torch.optim.lr_scheduler._LRScheduler  # torch 1.13 (Debian 12)

# Recommended schedules that run for a length: given total_steps, theirs.
_BOUNDED = ("one_cycle", "rex")


def schedule_values(schedule, total_steps: Optional[int] = None, *,
                    kind: str = "one_cycle",
                    binary: Optional[str] = None) -> List[Tuple[float, Optional[float]]]:
    """(lr, momentum or None) of steps 0..total_steps-1 (a bounded schedule:
    its length when total_steps is None), from `lrtune schedule`. Raises
    ValueError with the CLI's message naming the parameter."""
    args = [binary or find_binary(), "schedule", "--csv"]
    stdin = None
    if isinstance(schedule, dict):
        for name, value in schedule.items():
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                args.append(flag if value else "--no-" + flag[2:])
            elif isinstance(value, (list, tuple)):
                args += [flag, ",".join(str(v) for v in value)]
            else:
                args += [flag, repr(value) if isinstance(value, float) else str(value)]
    else:
        spec = _as_schedule_spec(schedule, kind, total_steps)
        args += ["--spec-json", "-"]
        stdin = json_format.MessageToJson(spec)
    if total_steps is not None:
        args += ["--steps", str(int(total_steps))]
    done = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(done.stderr.strip().removeprefix("lrtune schedule: "))
    values = []
    for line in done.stdout.splitlines()[1:]:
        _, lr, momentum = line.split(",")
        values.append((float(lr), float(momentum) if momentum else None))
    return values


def _as_schedule_spec(schedule, kind, total_steps):
    if isinstance(schedule, schedule_pb2.ScheduleSpec):
        return schedule
    rec = getattr(schedule, "recommendation", schedule)  # a RangeTestResult
    if not isinstance(rec, results_pb2.Recommendation):
        raise TypeError("schedule must be a dict of parameters, a ScheduleSpec, "
                        f"a RangeTestResult or a Recommendation, got {type(schedule).__name__}")
    if not rec.HasField("schedules"):
        raise ValueError("the recommendation has no schedules (no bounds: see "
                         "its warnings)")
    if kind not in ("one_cycle", "triangular", "sgdr", "rex"):
        raise ValueError(f"kind must be one_cycle, triangular, sgdr or rex, got {kind!r}")
    if rec.stepsize_epochs <= 0:
        # The stepsize is k x iterations per epoch, which this range test
        # did not know: the recommended schedules' cycles and lengths are
        # placeholders built on one iteration per epoch.
        how = ("pass iters_per_epoch=len(loader) to RangeTest "
               "(lrtune analyze: --iters-per-epoch)")
        if kind not in _BOUNDED:
            raise ValueError(
                f"the recommended {kind} schedule's cycle is k x iterations per "
                f"epoch, which the range test did not know: {how}, or give "
                f"a dict with your own step_size_up / t0")
        if total_steps is None:
            raise ValueError(
                f"the recommended {kind} schedule's length is a placeholder: "
                f"the range test did not know the iterations per epoch; give "
                f"total_steps, or {how}")
    spec = schedule_pb2.ScheduleSpec()
    spec.CopyFrom(getattr(rec.schedules, kind))
    if kind in _BOUNDED and total_steps is not None:
        spec.total_steps = int(total_steps)
    return spec


class LrtuneScheduler(_Base):
    """An LR scheduler over precomputed (lr, momentum) values; see the
    module's docstring. Use scheduler() to build one."""

    def __init__(self, optimizer, values, last_epoch: int = -1):
        if not values:
            raise ValueError("a schedule needs at least one step")
        self._values = values
        if last_epoch == -1:
            base = [float(g["lr"]) for g in optimizer.param_groups]
        else:
            base = [float(g["initial_lr"]) for g in optimizer.param_groups]
        top = max(base)
        self._ratios = [b / top if top > 0 else 1.0 for b in base]
        super().__init__(optimizer, last_epoch)

    def _value(self):
        return self._values[min(max(self.last_epoch, 0), len(self._values) - 1)]

    def get_lr(self):
        lr, _ = self._value()
        return [lr * r for r in self._ratios]

    def step(self, epoch=None):
        super().step(epoch) if epoch is not None else super().step()
        _, momentum = self._value()
        if momentum is None:
            return
        for group in self.optimizer.param_groups:
            if "betas" in group:
                group["betas"] = (momentum, group["betas"][1])
            elif "momentum" in group:
                group["momentum"] = momentum


def scheduler(optimizer, schedule, total_steps: Optional[int] = None, *,
              kind: str = "one_cycle", binary: Optional[str] = None,
              last_epoch: int = -1) -> LrtuneScheduler:
    """An LRScheduler giving `schedule`'s values (see the module's
    docstring); total_steps: the steps it is asked for (required for an
    unbounded schedule)."""
    return LrtuneScheduler(optimizer, schedule_values(schedule, total_steps,
                                                      kind=kind, binary=binary),
                           last_epoch)
