"""Tests of lrtune.RangeTest (client-driven range tests), lrtune.torch and
the embedded service, with Debian's python3 (torch 1.13, grpcio 1.51).

    LRTUNE_BIN=build/client/lrtune python3 -m unittest -v tests/test_range_test.py

They need the `lrtune` binary ($LRTUNE_BIN): the embedded service
(`lrtune serve`) and `lrtune schedule`; tests/python_loop_test.sh runs them
with the package installed by pip into a throwaway venv. Each test class
uses its own job store under a temporary XDG_DATA_HOME.
"""

import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import torch

import lrtune
import lrtune.torch as lrtorch
from lrtune.v1 import jobs_pb2, lrtune_pb2

BIN = os.environ.get("LRTUNE_BIN")
HERE = os.path.dirname(os.path.abspath(__file__))


def blobs(n=512, seed=0):
    """Two overlapping Gaussian blobs (1 standard deviation apart, so the
    loss has a floor and blows up at large LRs): x [n, 8], y [n] in {0, 1}."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 8, generator=g) + (y.float() - 0.5).unsqueeze(1)
    return x, y


def mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 2))


def batches(x, y, batch, seed=0):
    """An endless stream of shuffled batches."""
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - batch + 1, batch):
            idx = perm[i:i + batch]
            yield x[idx], y[idx]


def stored_points(conn, job_id):
    """The job's point events, in order, as (seed_index, step, lr, loss,
    skipped_updates)."""
    out = []
    request = lrtune_pb2.WatchJobRequest(job_id=job_id)
    for event in conn.stub.WatchJob(request, metadata=conn.metadata):
        if event.WhichOneof("event") == "point":
            p = event.point.point
            out.append((p.seed_index, p.step, p.lr, p.loss, p.skipped_updates))
    return out


@unittest.skipUnless(BIN, "LRTUNE_BIN is not set")
class EmbeddedRangeTest(unittest.TestCase):
    """In the user's loop, on the embedded service."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.db = os.path.join(cls.tmp.name, "jobs.db")

    def test_context_manager_recommends_and_restores_the_state(self):
        x, y = blobs()
        model = mlp()
        # Two groups, the second at a tenth of the first's LR.
        opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1},
                               {"params": model[2].parameters(), "lr": 0.01}],
                              momentum=0.9)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        seen = []
        with lrtune.RangeTest(model, opt, start_lr=1e-5, end_lr=100, steps=300,
                              iters_per_epoch=16, db=self.db,
                              flush_interval=0.02) as rt:
            for xb, yb in batches(x, y, 32):
                seen.append((opt.param_groups[0]["lr"], opt.param_groups[1]["lr"]))
                loss = torch.nn.functional.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                time.sleep(0.002)  # a model worth a range test takes longer
                if rt.step(loss):
                    break
        self.assertEqual(len(rt.lrs), 300)
        self.assertAlmostEqual(rt.lrs[0], 1e-5, delta=1e-15)
        for k, (lr0, lr1) in enumerate(seen):
            self.assertEqual(lr0, rt.lrs[k])
            self.assertAlmostEqual(lr1, rt.lrs[k] * 0.1, delta=1e-12 * rt.lrs[k])
        # Stopped by the coordinator (divergence), not the plan's end: the
        # stop arrives asynchronously, some steps after the one that diverged.
        self.assertLess(len(seen), 300)
        self.assertIn("diverged", rt.end_reason)
        result = rt.result
        self.assertGreater(result.max_lr, result.min_lr)
        self.assertGreater(result.min_lr, 0)
        self.assertEqual(result.stepsize_iterations, 64)
        self.assertIn("max_lr", result.one_cycle)
        self.assertTrue(result.suggestions)
        # The model and optimizer are back as they were.
        for k, v in model.state_dict().items():
            self.assertTrue(torch.equal(v, before[k]), k)
        self.assertEqual(opt.param_groups[0]["lr"], 0.1)
        self.assertEqual(opt.param_groups[1]["lr"], 0.01)
        self.assertNotIn("step", opt.__dict__)
        # The stored curve is what the loop applied, every step once, up to
        # the step that diverged.
        conn = lrtune.connect(db=self.db)
        points = stored_points(conn, rt.job_id)
        self.assertEqual([p[1] for p in points], list(range(len(points))))
        self.assertEqual([p[2] for p in points], [s[0] for s in seen[:len(points)]])
        self.assertEqual(result.recommendation.diverged_at, len(points) - 1)
        self.assertLessEqual(len(points), len(seen))

    def test_accumulation_and_skipped_updates(self):
        x, y = blobs(seed=1)
        model = mlp(1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        lrs_per_batch = []
        with lrtune.RangeTest(model, opt, start_lr=1e-4, end_lr=1, steps=30,
                              accumulation_steps=2, db=self.db) as rt:
            for i, (xb, yb) in enumerate(batches(x, y, 16)):
                lrs_per_batch.append(opt.param_groups[0]["lr"])
                loss = torch.nn.functional.cross_entropy(model(xb), yb) / 2
                loss.backward()
                # Batch 5 ends update 2, which AMP's GradScaler would skip
                # (inf gradients): no optimizer.step().
                if i % 2 == 1 and i != 5:
                    opt.step()
                    opt.zero_grad()
                elif i == 5:
                    opt.zero_grad()
                if rt.step(loss):
                    break
        # Two batches per update; the skipped update kept its LR.
        self.assertEqual(lrs_per_batch[0], lrs_per_batch[1])
        self.assertEqual(lrs_per_batch[4], rt.lrs[2])
        self.assertEqual(lrs_per_batch[6], rt.lrs[2])
        self.assertEqual(lrs_per_batch[8], rt.lrs[3])
        self.assertEqual(len(lrs_per_batch), 2 * 30 + 2)  # the plan, + 1 skip
        points = stored_points(lrtune.connect(db=self.db), rt.job_id)
        self.assertEqual(len(points), 30)
        self.assertEqual([p[4] for p in points[:4]], [0, 0, 1, 0])
        self.assertIn("plan's 30 steps are done", rt.end_reason)
        self.assertEqual(rt.result.points, 30)

    def test_two_runs_report_into_one_job(self):
        x, y = blobs(seed=2)
        job_id = None
        for run in range(2):
            model = mlp(10 + run)
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            with lrtune.RangeTest(model, opt, steps=100, end_lr=10, seeds=[5, 6],
                                  job=job_id, db=self.db) as rt:
                self.assertEqual(rt.run_index, run)
                self.assertEqual(rt.seed, 5 + run)
                torch.manual_seed(rt.seed)
                for xb, yb in batches(x, y, 32, seed=rt.seed):
                    loss = torch.nn.functional.cross_entropy(model(xb), yb)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    if rt.step(loss):
                        break
            job_id = rt.job_id
        result = rt.result
        self.assertEqual(result.recommendation.seeds, 2)
        self.assertEqual(len(result.job.range_test_result.per_seed), 2)
        runs = {p[0] for p in stored_points(lrtune.connect(db=self.db), job_id)}
        self.assertEqual(runs, {0, 1})
        lo, hi = result.max_lr_interval
        self.assertLessEqual(lo, result.max_lr)
        self.assertLessEqual(result.max_lr, hi)

    def test_a_loop_that_ends_early_is_analysed_as_far_as_it_went(self):
        x, y = blobs(seed=3)
        model = mlp(3)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        with lrtune.RangeTest(model, opt, steps=200, db=self.db) as rt:
            for i, (xb, yb) in enumerate(batches(x, y, 32)):
                loss = torch.nn.functional.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if rt.step(loss) or i == 49:
                    break
        self.assertIn("after step 49 of 200", rt.end_reason)
        self.assertEqual(rt.run_recommendation.points_used, 50)
        # Adam's beta1 went to the analysis as the momentum.
        job = lrtune.connect(db=self.db).stub.GetJob(
            lrtune_pb2.GetJobRequest(job_id=rt.job_id))
        self.assertEqual(job.range_test.range_test.analysis.momentum, 0.9)
        self.assertEqual(job.range_test.run.optimizer.kind, 2)  # adam

    def test_an_exception_fails_the_run_and_restores_the_state(self):
        model = mlp(4)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        before = [p.clone() for p in model.parameters()]
        with self.assertRaises(ZeroDivisionError):
            with lrtune.RangeTest(model, opt, steps=50, db=self.db) as rt:
                for p in model.parameters():
                    p.data.add_(1.0)
                1 / 0
        for p, q in zip(model.parameters(), before):
            self.assertTrue(torch.equal(p, q))
        with self.assertRaises(lrtune.JobFailedError) as failed:
            rt.result
        self.assertIn("ZeroDivisionError", str(failed.exception))

    def test_bad_input_is_refused_naming_the_field(self):
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with self.assertRaises(lrtune.LrtuneError) as bad:
            with lrtune.RangeTest(model, opt, steps=1, db=self.db):
                pass
        self.assertIn("range_test.steps must be in [2, 1000000]", str(bad.exception))
        with self.assertRaises(lrtune.LrtuneError) as bad:
            with lrtune.RangeTest(model, opt, steps=200000, db=self.db):
                pass
        self.assertIn("for a client-driven test", str(bad.exception))
        with self.assertRaises(ValueError):
            lrtune.RangeTest(model, opt, ramp="cubic")
        for seeds in (0, -2, []):  # not the server's default of one seed
            with self.assertRaisesRegex(ValueError, "seeds must be a count >= 1 "
                                        "or a non-empty list of seed labels"):
                lrtune.RangeTest(model, opt, seeds=seeds)
        with self.assertRaises(lrtune.LrtuneError) as missing:
            with lrtune.RangeTest(model, opt, job="j-0000000000000000", db=self.db):
                pass
        self.assertEqual(missing.exception.code.name, "NOT_FOUND")

    def test_plot_draws_the_curve_and_bounds(self):
        try:
            import matplotlib
            matplotlib.use("Agg")
        except ImportError:
            model = mlp()
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            rt = lrtune.RangeTest(model, opt, db=self.db)
            with self.assertRaises(ImportError) as missing:
                rt.plot()
            self.assertIn("python3-matplotlib", str(missing.exception))
            return
        x, y = blobs(seed=5)
        model = mlp(5)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        with lrtune.RangeTest(model, opt, steps=100, db=self.db) as rt:
            for xb, yb in batches(x, y, 32):
                loss = torch.nn.functional.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if rt.step(loss):
                    break
        ax = rt.plot()
        self.assertEqual(ax.get_xscale(), "log")
        self.assertGreaterEqual(len(ax.lines), 2)  # raw and smoothed
        # The smoothed line is the curve the bounds were read from: the
        # analysis's zero-lag curve up to the divergence, not the late EMA.
        rec = rt.run_recommendation
        self.assertEqual(len(rec.position), rec.points_used)
        line = ax.lines[1]
        self.assertEqual(line.get_label(), "smoothed (the analysis's curve)")
        self.assertEqual(list(line.get_ydata()), list(rec.position))
        out = os.path.join(self.tmp.name, "curve.png")
        ax.figure.savefig(out)
        self.assertGreater(os.path.getsize(out), 1000)

    def test_the_cli_trains_its_range_test_while_this_session_holds_the_store(self):
        # This session's service (lrtune serve) holds the store for as long
        # as the session lives: a range test from the terminal on the same
        # store does not wait for it to end; it trains in its own process
        # and its job is the store's, seen from here.
        conn = lrtune.connect(db=self.db)
        done = subprocess.run(
            [BIN, "range-test", "--db", self.db, "--dataset", "spirals",
             "--model", "mlp", "--hidden", "16", "--threads", "1",
             "--steps", "20"],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("is in use by `lrtune serve`", done.stderr)
        job_id = done.stdout.split()[2].rstrip(":")
        job = conn.stub.GetJob(lrtune_pb2.GetJobRequest(job_id=job_id),
                               metadata=conn.metadata)
        self.assertEqual(job.state, jobs_pb2.JOB_STATE_SUCCEEDED)


@unittest.skipUnless(BIN, "LRTUNE_BIN is not set")
class SchedulerTest(unittest.TestCase):
    """lrtune.torch.scheduler against `lrtune schedule --csv`."""

    CASES = [
        {"kind": "one_cycle", "max_lr": 0.1, "total_steps": 200},
        {"kind": "rex", "base_lr": 0.1, "total_steps": 150, "sample_every": 10},
        {"kind": "cosine", "base_lr": 0.1, "t_max": 50, "warmup_steps": 10},
        {"kind": "sgdr", "base_lr": 0.1, "t0": 10, "t_mult": 2, "eta_min": 0.001},
        {"kind": "triangular2", "base_lr": 0.001, "max_lr": 0.1, "step_size_up": 20},
        {"kind": "multistep", "base_lr": 0.1, "milestones": [30, 60, 60]},
        {"kind": "wsd", "base_lr": 3e-4, "total_steps": 100, "cooldown": "1-sqrt"},
        {"kind": "one_cycle", "max_lr": 0.05, "total_steps": 100,
         "three_phase": True, "cycle_momentum": False},
    ]

    def csv(self, case, steps):
        args = [BIN, "schedule", "--csv", "--steps", str(steps)]
        for k, v in case.items():
            flag = "--" + k.replace("_", "-")
            if isinstance(v, bool):
                args.append(flag if v else "--no-" + flag[2:])
            elif isinstance(v, list):
                args += [flag, ",".join(map(str, v))]
            else:
                args += [flag, str(v)]
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
        rows = [line.split(",") for line in out.splitlines()[1:]]
        return [(float(lr), float(m) if m else None) for _, lr, m in rows]

    def test_every_kind_value_for_value(self):
        for case in self.CASES:
            with self.subTest(kind=case["kind"]):
                steps = case.get("total_steps", 120)
                expected = self.csv(case, steps)
                model = mlp()
                opt = torch.optim.SGD(model.parameters(), lr=case.get("base_lr", 0.1),
                                      momentum=0.9)
                sched = lrtorch.scheduler(opt, case, total_steps=steps)
                for t in range(steps):
                    lr, momentum = expected[t]
                    self.assertEqual(opt.param_groups[0]["lr"], lr, (case, t))
                    if momentum is not None:
                        self.assertEqual(opt.param_groups[0]["momentum"], momentum)
                    opt.step()
                    sched.step()

    def test_one_cycle_equals_pytorchs(self):
        model = mlp()
        ours = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        theirs = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        a = lrtorch.scheduler(ours, {"kind": "one_cycle", "max_lr": 0.1,
                                     "total_steps": 300})
        b = torch.optim.lr_scheduler.OneCycleLR(theirs, max_lr=0.1, total_steps=300)
        for t in range(300):
            lr_a, lr_b = ours.param_groups[0]["lr"], theirs.param_groups[0]["lr"]
            self.assertLessEqual(abs(lr_a - lr_b), 1e-9 * lr_b, t)
            self.assertLessEqual(abs(ours.param_groups[0]["momentum"]
                                     - theirs.param_groups[0]["momentum"]), 1e-12)
            ours.step()
            theirs.step()
            a.step()
            b.step()

    def test_from_a_recommendation_and_adam_betas(self):
        from lrtune.v1 import results_pb2
        rec = results_pb2.Recommendation(min_lr=0.01, max_lr=0.1,
                                         stepsize_iterations=100)
        rec.schedules.one_cycle.kind = 12  # SCHEDULE_KIND_ONE_CYCLE
        rec.schedules.one_cycle.max_lr = 0.1
        rec.schedules.one_cycle.div_factor = 10
        rec.schedules.one_cycle.total_steps = 800
        model = mlp()
        opt = torch.optim.Adam(model.parameters(), lr=0.1)
        sched = lrtorch.scheduler(opt, rec, total_steps=500)
        expected = self.csv({"kind": "one_cycle", "max_lr": 0.1, "div_factor": 10,
                             "total_steps": 500}, 500)
        for t in range(500):
            self.assertEqual(opt.param_groups[0]["lr"], expected[t][0])
            self.assertEqual(opt.param_groups[0]["betas"][0], expected[t][1])
            opt.step()
            sched.step()
        with self.assertRaises(ValueError) as bad:
            lrtorch.scheduler(opt, {"kind": "cosine"}, total_steps=10)
        self.assertIn("--t-max", str(bad.exception))
        # Without iterations per epoch (stepsize_epochs 0) the recommended
        # cycles and lengths are placeholders: refused, saying what to give.
        with self.assertRaises(ValueError) as bad:
            lrtorch.scheduler(opt, rec)
        self.assertIn("give total_steps", str(bad.exception))
        with self.assertRaises(ValueError) as bad:
            lrtorch.scheduler(opt, rec, kind="triangular", total_steps=500)
        self.assertIn("iters_per_epoch=len(loader)", str(bad.exception))
        rec.stepsize_epochs = 4
        rec.schedules.triangular.kind = 9  # SCHEDULE_KIND_TRIANGULAR
        rec.schedules.triangular.base_lr = 0.01
        rec.schedules.triangular.max_lr = 0.1
        rec.schedules.triangular.step_size_up = 100
        self.assertEqual(len(lrtorch.schedule_values(rec, 500, kind="triangular")),
                         500)


# A script's range test with ui=True (its own process: the embedded service
# is one per process). While it runs it reads its job's page from the
# dashboard (with and without the token) and lists the job with the CLI
# from another process, and prints what it saw as JSON.
_UI_SCRIPT = r"""
import json, subprocess, sys, urllib.error, urllib.request
import torch
import lrtune
sys.path.insert(0, sys.argv[1])
from test_range_test import batches, blobs, mlp
bin, db = sys.argv[2], sys.argv[3]
x, y = blobs()
model = mlp()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
seen = {}
with lrtune.RangeTest(model, opt, steps=50, db=db, ui=True) as rt:
    for xb, yb in batches(x, y, 32):
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad(); loss.backward(); opt.step()
        if not seen:
            base, _, rest = rt.dashboard_url.partition("/#/")
            token = rest.partition("token=")[2]
            request = urllib.request.Request(
                f"{base}/api/jobs/{rt.job_id}",
                headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=10) as r:
                seen["job"] = json.load(r)
            try:
                urllib.request.urlopen(f"{base}/api/jobs/{rt.job_id}", timeout=10)
                seen["no_token"] = 200
            except urllib.error.HTTPError as e:
                seen["no_token"] = e.code
            seen["jobs_cli"] = subprocess.run(
                [bin, "jobs", "--db", db], capture_output=True, text=True,
                timeout=30).stdout
        if rt.step(loss):
            break
seen["url"] = rt.dashboard_url
seen["job_id"] = rt.job_id
print(json.dumps(seen))
"""


# A Python session on a store: a range test in this process's loop for
# each "run" line on stdin, printing the embedded service's target, the job
# and its max_lr as JSON; "exit" ends it.
_SESSION_SCRIPT = r"""
import json, sys
import torch
import lrtune
from lrtune import embedded
sys.path.insert(0, sys.argv[1])
from test_range_test import batches, blobs, mlp
db = sys.argv[2]
for line in sys.stdin:
    if line.strip() != "run":
        break
    x, y = blobs()
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with lrtune.RangeTest(model, opt, steps=50, db=db) as rt:
        for xb, yb in batches(x, y, 32):
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad(); loss.backward(); opt.step()
            if rt.step(loss):
                break
    print(json.dumps({"target": embedded.shared_service(db).target,
                      "job": rt.job_id, "max_lr": rt.result.max_lr}),
          flush=True)
"""


@unittest.skipUnless(BIN, "LRTUNE_BIN is not set")
class TwoSessionsTest(unittest.TestCase):
    """Two Python processes on one store: the second uses the first's
    service while it lives, then starts its own."""

    def test_the_second_session_shares_the_first_ones_service_then_takes_over(self):
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "jobs.db")
            env = dict(os.environ, XDG_RUNTIME_DIR=tmp)

            def session():
                return subprocess.Popen(
                    [sys.executable, "-c", _SESSION_SCRIPT, HERE, db],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True, env=env)

            def run(proc):
                proc.stdin.write("run\n")
                proc.stdin.flush()
                # A session that waited for the store would never answer.
                ready, _, _ = select.select([proc.stdout], [], [], 120)
                self.assertTrue(ready, "no answer in 120 s")
                line = proc.stdout.readline()
                self.assertTrue(line, "the session ended")
                return json.loads(line)

            first, second = session(), session()
            try:
                a = run(first)
                b = run(second)  # waited for nothing: it shares the service
                self.assertEqual(b["target"], a["target"])
                self.assertNotEqual(b["job"], a["job"])
                first.stdin.close()
                self.assertEqual(first.wait(timeout=60), 0)
                time.sleep(1)  # the second's serve sees the first's end
                c = run(second)
                self.assertNotEqual(c["target"], a["target"])  # its own now
                second.stdin.close()
                second_err = second.stderr.read()
                self.assertEqual(second.wait(timeout=60), 0, second_err)
                self.assertIn("is served by another lrtune serve", second_err)
            finally:
                for proc in (first, second):
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                    for pipe in (proc.stdin, proc.stdout, proc.stderr):
                        if not pipe.closed:
                            pipe.close()
            jobs = subprocess.run([BIN, "jobs", "--db", db], capture_output=True,
                                  text=True, timeout=30).stdout
            for job in (a["job"], b["job"], c["job"]):
                self.assertRegex(jobs, rf"(?m)^{job} +range-test succeeded")

    def test_ui_on_a_store_served_without_a_dashboard_fails_at_once(self):
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "jobs.db")
            env = dict(os.environ, XDG_RUNTIME_DIR=tmp)
            # A serve without the dashboard, as a session without ui keeps.
            host = subprocess.Popen([BIN, "serve", "--db", db],
                                    stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, env=env)
            try:
                self.assertTrue(host.stdout.readline().startswith(b"unix:"))
                # Waiting for that session to end would time out here.
                late = subprocess.run(
                    [sys.executable, "-c",
                     "import sys, lrtune; lrtune.connect(db=sys.argv[1], "
                     "ui=True)", db],
                    capture_output=True, text=True, env=env, timeout=60)
                self.assertNotEqual(late.returncode, 0)
                # The exception carries serve's reason and the way out.
                self.assertRegex(
                    late.stderr,
                    r"RuntimeError: .* exited with 2 before serving: lrtune "
                    r"serve: .*jobs\.db is served without a dashboard by "
                    r"another process's `lrtune serve`.*start `lrtune "
                    r"dashboard` before that session")
                self.assertIsNone(host.poll())  # the host serves on
            finally:
                host.stdin.close()
                self.assertEqual(host.wait(timeout=60), 0)
                host.stdout.close()


@unittest.skipUnless(BIN, "LRTUNE_BIN is not set")
class DashboardAndTerminalTest(unittest.TestCase):
    """ui=True serves the embedded service's dashboard; the CLI reaches the
    running service from another process."""

    def test_the_running_test_is_on_the_dashboard_and_in_lrtune_jobs(self):
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                [sys.executable, "-c", _UI_SCRIPT, HERE, BIN,
                 os.path.join(tmp, "jobs.db")],
                capture_output=True, text=True, timeout=240,
                env=dict(os.environ, XDG_RUNTIME_DIR=tmp))
        self.assertEqual(done.returncode, 0, done.stderr)
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        job = seen["job_id"]
        self.assertTrue(seen["url"].startswith("http://127.0.0.1:"), seen["url"])
        self.assertIn(f"/#/jobs/{job}?token=", seen["url"])
        self.assertIn(f"lrtune: dashboard at {seen['url']}", done.stderr)
        self.assertEqual(seen["job"]["job"]["job_id"], job)
        self.assertEqual(seen["no_token"], 401)
        self.assertRegex(seen["jobs_cli"], rf"(?m)^{job} +range-test running")

    def test_ui_with_a_server_is_refused(self):
        with self.assertRaisesRegex(ValueError, "dashboard-listen"):
            lrtune.connect("127.0.0.1:1", ui=True)


@unittest.skipUnless(BIN, "LRTUNE_BIN is not set")
class DistributedTest(unittest.TestCase):
    """DDP on two CPU processes (gloo): rank 0 reports, every rank gets the
    same LR and stops at the same step (tests/ddp_range_test.py)."""

    def test_two_ranks_share_one_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            # A port nobody listens on now (a fixed one may be another
            # program's, and rank 1 would then wait on it).
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = str(s.getsockname()[1])
            procs, logs = [], []
            for rank in range(2):
                env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2",
                           MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                           OUT=os.path.join(tmp, f"rank{rank}.json"),
                           LRTUNE_TEST_DB=os.path.join(tmp, "jobs.db"),
                           PYTHONFAULTHANDLER="1")
                logs.append(open(os.path.join(tmp, f"rank{rank}.log"), "w+"))
                procs.append(subprocess.Popen(
                    [sys.executable, os.path.join(HERE, "ddp_range_test.py")],
                    env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
            deadline = time.monotonic() + 240
            codes = []
            for p in procs:
                try:
                    left = max(1.0, deadline - time.monotonic())
                    codes.append(p.wait(timeout=left))
                except subprocess.TimeoutExpired:
                    codes.append(None)
            if codes != [0, 0]:
                # What each rank was doing: its output, and where a hung
                # one's threads were (faulthandler, on SIGABRT).
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGABRT)
                        try:
                            p.wait(timeout=10)
                        except subprocess.TimeoutExpired:
                            p.kill()
                            p.wait()
                for rank, log in enumerate(logs):
                    log.seek(0)
                    sys.stderr.write(f"--- rank {rank} (exit {codes[rank]}):\n"
                                     f"{log.read()[-6000:]}\n")
            for log in logs:
                log.close()
            self.assertEqual(codes, [0, 0], "exit codes of ranks 0 and 1 "
                             "(None: still running after 240 s)")
            r0, r1 = [], []
            for r, out in enumerate((r0, r1)):
                with open(os.path.join(tmp, f"rank{r}.json")) as f:
                    out.append(json.load(f))
            r0, r1 = r0[0], r1[0]
        self.assertEqual(r0["lrs"], r1["lrs"])  # the same LR every update
        self.assertEqual(r0["steps"], r1["steps"])  # stopped together
        self.assertEqual(r0["params_equal_after_restore"], True)
        self.assertEqual(r1["params_equal_after_restore"], True)
        self.assertTrue(r0["job_id"])
        self.assertEqual(r0["job_id"], r1["job_id"])
        self.assertGreater(r0["max_lr"], 0)
        self.assertEqual(r0["max_lr"], r1["max_lr"])
        # Stored once each, up to the step that diverged (the stop reaches
        # the ranks a few steps later).
        stored = r0["stored_steps"]
        self.assertEqual(stored, list(range(len(stored))))
        self.assertLessEqual(len(stored), r0["steps"])
        self.assertIn("diverged", r0["end_reason"])


if __name__ == "__main__":
    unittest.main()
