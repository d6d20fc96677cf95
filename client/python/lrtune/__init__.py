"""lrtune: a Python client of the lrtune LR-tuning service.

    from lrtune import Client
    result = Client("127.0.0.1:50051").range_test_module(model, x, y)
    print(result.min_lr, result.max_lr, result.one_cycle)

The gRPC code is generated, not committed: run client/python/generate.sh
(or `python3 -m lrtune.generate`) first. It is looked for in
$LRTUNE_GEN_DIR, else in lrtune/_gen; its modules are `lrtune.v1.*_pb2`.
"""

import os as _os

GEN_DIR = _os.environ.get("LRTUNE_GEN_DIR") or _os.path.join(
    _os.path.dirname(_os.path.abspath(__file__)), "_gen")
# protoc writes `from lrtune.v1 import spec_pb2`: make lrtune.v1 the
# generated folder.
__path__.append(_os.path.join(GEN_DIR, "lrtune"))  # noqa: F821

_EXPORTS = ("Client", "LrtuneError", "JobFailedError", "Point",
            "RangeTestResult", "RangeTestStream")


def __getattr__(name):
    # Lazy, so that `python3 -m lrtune.generate` runs before any code exists.
    if name in _EXPORTS:
        from lrtune import client
        return getattr(client, name)
    raise AttributeError(f"module 'lrtune' has no attribute {name!r}")
