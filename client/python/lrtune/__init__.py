"""lrtune: LR range tests and schedules from Python.

In your own training loop (the service steers, your loop trains):

    with lrtune.RangeTest(model, optimizer, end_lr=10, steps=100) as rt:
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            if rt.step(loss):
                break
    print(rt.result.min_lr, rt.result.max_lr)
    sched = lrtune.torch.scheduler(optimizer, rt.result, total_steps=10000)

Or on the service's workers, for a built-in or TorchScript model:

    result = lrtune.Client("127.0.0.1:50051").range_test_module(model, x, y)

The gRPC code is generated: `pip install ./client/python` builds it in;
from a source tree run client/python/generate.sh (or `python3 -m
lrtune.generate`). It is looked for in $LRTUNE_GEN_DIR, else in lrtune/_gen;
its modules are `lrtune.v1.*_pb2`.
"""

import os as _os

GEN_DIR = _os.environ.get("LRTUNE_GEN_DIR") or _os.path.join(
    _os.path.dirname(_os.path.abspath(__file__)), "_gen")
# protoc writes `from lrtune.v1 import spec_pb2`: make lrtune.v1 the
# generated folder.
__path__.append(_os.path.join(GEN_DIR, "lrtune"))  # noqa: F821

_EXPORTS = {
    "Client": "client", "LrtuneError": "client", "JobFailedError": "client",
    "Point": "client", "RangeTestResult": "client",
    "RangeTestStream": "client", "RangeTest": "range_test",
    "connect": "connection",
}


def __getattr__(name):
    # Lazy, so that `python3 -m lrtune.generate` runs before any code exists
    # and `import lrtune` stays cheap.
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module("lrtune." + _EXPORTS[name]),
                       name)
    if name == "torch":
        import importlib
        return importlib.import_module("lrtune.torch")
    raise AttributeError(f"module 'lrtune' has no attribute {name!r}")
