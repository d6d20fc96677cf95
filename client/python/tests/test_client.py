"""Tests of the lrtune Python client.

    LRTUNE_TEST_SERVER=127.0.0.1:PORT LRTUNE_GEN_DIR=DIR \
        PYTHONPATH=client/python python3 -m unittest client/python/tests/test_client.py

LiveServerTest needs a running lrtune-server with one CPU worker at
$LRTUNE_TEST_SERVER (tests/python_client_test.sh starts them) and is skipped
without it; the other tests run against fakes.
"""

import os
import subprocess
import sys
import unittest

import grpc
import torch

import lrtune
from lrtune import client as lrtune_client
from lrtune.v1 import jobs_pb2, results_pb2

SERVER = os.environ.get("LRTUNE_TEST_SERVER")
CLI = os.environ.get("LRTUNE_TEST_CLI")  # the lrtune CLI, for parity checks
EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "examples", "train_with_recommendation.py")


def separable(n=256, seed=0):
    """Two Gaussian blobs 4 standard deviations apart: x [n, 4], y [n]."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 4, generator=g) + (y.float() * 4 - 2).unsqueeze(1)
    return x, y


def tiny_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 2))


@unittest.skipUnless(SERVER, "LRTUNE_TEST_SERVER is not set")
class LiveServerTest(unittest.TestCase):

    def setUp(self):
        self.client = lrtune.Client(SERVER)
        self.addCleanup(self.client.close)

    def test_range_test_module_streams_points_and_recommends(self):
        x, y = separable()
        points = []
        result = self.client.range_test_module(
            tiny_mlp(), x, y, steps=60, batch_size=32, start_lr=1e-4,
            on_point=lambda step, lr, loss: points.append((step, lr, loss)))
        self.assertEqual([p[0] for p in points], list(range(60)))
        lrs = [p[1] for p in points]
        self.assertAlmostEqual(lrs[0], 1e-4, delta=1e-10)
        self.assertEqual(lrs, sorted(lrs))
        self.assertTrue(result.job_id)
        self.assertLessEqual(result.min_lr, result.max_lr)
        self.assertGreater(result.max_lr, 0, result.warnings)
        self.assertEqual(result.one_cycle["max_lr"], result.max_lr)
        # One seed: the interval is the point itself.
        self.assertEqual(result.max_lr_interval, (result.max_lr, result.max_lr))
        self.assertEqual(result.job.state, jobs_pb2.JOB_STATE_SUCCEEDED)
        self.assertEqual(result.points, 60)
        # str(result) is the summary `lrtune get` prints for the same job.
        summary = str(result).splitlines()
        self.assertEqual(summary[0], f"range test {result.job_id}: 60 points")
        self.assertIn("max_lr %.3g" % result.max_lr, summary[1])
        if CLI:
            printed = subprocess.run(
                [CLI, "get", "--server", SERVER, result.job_id],
                capture_output=True, text=True, check=True).stdout.splitlines()
            self.assertEqual(summary[1:], [line for line in printed
                                           if line.startswith("  ")])

        # The finished job can be read and watched from any seq.
        job = self.client.get(result.job_id)
        self.assertEqual(job.job_id, result.job_id)
        events = list(self.client.watch(result.job_id, after_seq=2))
        self.assertEqual(events[0].seq, 3)
        self.assertEqual([e.seq for e in events],
                         list(range(3, 3 + len(events))))
        self.assertEqual(events[-1].state_changed.state,
                         jobs_pb2.JOB_STATE_SUCCEEDED)
        with self.assertRaises(lrtune.LrtuneError) as cm:
            self.client.cancel(result.job_id)
        self.assertEqual(cm.exception.code, grpc.StatusCode.FAILED_PRECONDITION)

    def test_stream_variant_yields_points_then_result(self):
        x, y = separable(seed=1)
        stream = self.client.range_test_module_stream(
            tiny_mlp(), x, y, steps=20, batch_size=32, seeds=[3, 4])
        points = list(stream)
        self.assertEqual(len(points), 40)
        self.assertEqual(sorted({p.seed_index for p in points}), [0, 1])
        for seed in (0, 1):
            self.assertEqual([p.step for p in points if p.seed_index == seed],
                             list(range(20)))
        self.assertIsNotNone(stream.result)
        self.assertEqual(stream.result.job_id, stream.job_id)
        self.assertEqual(stream.result.recommendation.seeds, 2)

    def test_invalid_argument_names_the_field(self):
        x, y = separable()
        with self.assertRaises(lrtune.LrtuneError) as cm:
            self.client.range_test_module(tiny_mlp(), x, y, steps=0)
        self.assertEqual(cm.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("range_test.steps", str(cm.exception))
        with self.assertRaises(lrtune.LrtuneError) as cm:
            self.client.range_test_module(tiny_mlp(), x, y, batch_size=0)
        self.assertEqual(cm.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("run.batch_size", cm.exception.details)

    def test_unknown_job_is_not_found(self):
        with self.assertRaises(lrtune.LrtuneError) as cm:
            self.client.get("j-nope")
        self.assertEqual(cm.exception.code, grpc.StatusCode.NOT_FOUND)

    def test_builtin_range_test(self):
        result = self.client.range_test("mlp", "spirals", hidden=[16],
                                        steps=30, start_lr=1e-4)
        self.assertTrue(result.job_id)
        self.assertLessEqual(result.min_lr, result.max_lr)

    def test_validation_metric_range_test(self):
        # Smith's original test: bounds from the validation loss, read off an
        # evaluation every 2 steps.
        result = self.client.range_test("mlp", "spirals", hidden=[16],
                                        steps=120, start_lr=1e-4,
                                        metric="val_loss")
        self.assertLess(result.min_lr, result.max_lr)
        rt = result.job.range_test.range_test
        self.assertEqual(rt.eval_every, 2)
        # Read from the evaluations: at most 120 / 2 points.
        self.assertLessEqual(result.recommendation.points_used, 60)
        with self.assertRaises(ValueError):
            self.client.range_test("mlp", "spirals", metric="accuracy")
        # seeds=0 is refused, not sent as the server's default of one seed.
        with self.assertRaisesRegex(ValueError, "seeds must be a count >= 1"):
            self.client.range_test("mlp", "spirals", seeds=0)

    def test_example_script_trains_with_the_recommendation(self):
        env = dict(os.environ)
        done = subprocess.run(
            [sys.executable, EXAMPLE, "--server", SERVER], env=env,
            capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("final validation accuracy", done.stdout)
        accuracy = float(done.stdout.strip().split()[-1])
        self.assertGreater(accuracy, 0.8, done.stdout)


class FakeRpcError(grpc.RpcError):

    def __init__(self, code, details):
        super().__init__()
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def point_event(seq, step):
    e = jobs_pb2.JobEvent(seq=seq, job_id="j-1")
    e.point.point.step = step
    e.point.point.lr = 0.1 * (step + 1)
    e.point.point.loss = 1.0
    return e


class FakeStub:
    """RangeTest sends accepted + 3 points then fails UNAVAILABLE; WatchJob
    sends what follows after_seq (points up to step 5, then SUCCEEDED)."""

    def __init__(self):
        self.watch_requests = []
        self.metadata = []

    def _events(self):
        accepted = jobs_pb2.JobEvent(seq=1, job_id="j-1")
        accepted.accepted.job.job_id = "j-1"
        events = [accepted] + [point_event(2 + i, i) for i in range(6)]
        done = jobs_pb2.JobEvent(seq=8, job_id="j-1")
        done.state_changed.state = jobs_pb2.JOB_STATE_SUCCEEDED
        return events + [done]

    def RangeTest(self, request, metadata=()):
        self.metadata.append(metadata)

        def gen():
            yield from self._events()[:4]
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "server going away")
        return gen()

    def WatchJob(self, request, metadata=()):
        self.watch_requests.append(request)
        return iter([e for e in self._events() if e.seq > request.after_seq])

    def GetJob(self, request, metadata=()):
        job = jobs_pb2.Job(job_id=request.job_id, state=jobs_pb2.JOB_STATE_SUCCEEDED)
        rec = job.range_test_result.recommendation
        rec.min_lr, rec.max_lr = 0.01, 0.1
        rec.one_cycle.max_lr, rec.one_cycle.div_factor = 0.1, 10
        rec.lr_valley = 0.02
        rec.warnings.append(results_pb2.AnalysisWarning(code="c", message="m"))
        return job


class FakeServerTest(unittest.TestCase):

    def make_client(self, token=None):
        client = lrtune.Client("127.0.0.1:1", token=token)
        client._stub = FakeStub()
        self.addCleanup(client.close)
        return client

    def test_unavailable_resumes_with_watch_from_last_seq(self):
        client = self.make_client()
        steps = []
        result = client.range_test_module(
            tiny_mlp(), *separable(), on_point=lambda s, lr, loss: steps.append(s))
        self.assertEqual(steps, list(range(6)))
        self.assertEqual([r.after_seq for r in client._stub.watch_requests], [4])
        self.assertEqual(client._stub.watch_requests[0].job_id, "j-1")
        self.assertEqual(result.job_id, "j-1")
        self.assertEqual((result.min_lr, result.max_lr), (0.01, 0.1))
        self.assertEqual(result.suggestions, {"valley": 0.02})
        self.assertEqual(result.one_cycle["div_factor"], 10)
        self.assertEqual(result.warnings, [("c", "m")])
        # print(result) gives the CLI's summary; repr leaves the protos out.
        self.assertEqual(str(result).splitlines(), [
            "range test j-1: 0 points",
            "  CLR bounds      min_lr 0.01   max_lr 0.1",
            "  stepsize        0 iterations (give iterations per epoch for epochs)",
            "  fastai          valley 0.02   steep -   minimum/10 -   slide -",
            "  zero-lag        steepest -   lowest -",
            "  1cycle          max_lr 0.1  div_factor 10  final_div_factor 0  "
            "pct_start 0  momentum 0.00..0.00",
            "  points used     0 (never diverged)",
            "  warning         [c] m"])
        self.assertNotIn("recommendation=", repr(result))
        self.assertIn("max_lr=0.1", repr(result))

    def test_token_is_sent_as_bearer_metadata(self):
        client = self.make_client(token="s3cret")
        client.range_test_module(tiny_mlp(), *separable())
        self.assertEqual(client._stub.metadata,
                         [(("authorization", "Bearer s3cret"),)])

    def test_unreachable_server_is_unavailable(self):
        with lrtune.Client("127.0.0.1:1") as client:
            with self.assertRaises(lrtune.LrtuneError) as cm:
                client.get("j-1")
        self.assertEqual(cm.exception.code, grpc.StatusCode.UNAVAILABLE)


class InlineDataTest(unittest.TestCase):

    def test_labels_and_shape(self):
        x = torch.arange(24, dtype=torch.float64).reshape(4, 2, 3)
        data = lrtune_client.inline_data(x, torch.tensor([0, 1, 2, 1]))
        self.assertEqual(list(data.x_shape), [4, 2, 3])
        self.assertEqual(list(data.x), [float(i) for i in range(24)])
        self.assertEqual(list(data.y_labels), [0, 1, 2, 1])
        self.assertEqual(len(data.y_targets), 0)

    def test_float_targets_have_a_width(self):
        data = lrtune_client.inline_data(torch.zeros(5, 3), torch.ones(5, 2))
        self.assertEqual(len(data.y_targets), 10)
        self.assertEqual(data.y_target_width, 2)
        self.assertEqual(len(data.y_labels), 0)

    def test_mismatched_samples_raise(self):
        with self.assertRaises(ValueError):
            lrtune_client.inline_data(torch.zeros(5, 3), torch.zeros(4))

    def test_unscriptable_module_is_traced(self):
        class Odd(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(3, 2)

            def forward(self, x):
                double = lambda v: v * 2  # noqa: E731 (TorchScript has no lambdas)
                return double(self.fc(x))

        with self.assertRaises(Exception):
            torch.jit.script(Odd())
        blob = lrtune_client.script_module(Odd(), torch.zeros(4, 3))
        loaded = torch.jit.load(__import__("io").BytesIO(blob))
        self.assertEqual(list(loaded(torch.zeros(2, 3)).shape), [2, 2])


if __name__ == "__main__":
    unittest.main()
