"""Client-driven range tests across processes: a real PyTorch training script
(tests/python_loop/own_loop.py) against a real lrtune-server on loopback,
with the coordinator SIGKILLed and restarted mid-test; RangeTest against a
server with TLS and tokens (another owner's job, no token, a wrong CA);
and a client-driven test against a worker-run one on the same model, data
and seed.

    LRTUNE_SERVER_BIN=... LRTUNE_WORKER_BIN=... LRTUNE_BIN=... \
        python3 -m unittest -v tests/python_loop_test.py

tests/python_loop_test.sh runs it with the lrtune package pip-installed in a
throwaway venv. The stored curve is read back with `lrtune watch --json`,
as a user would.
"""

import gzip
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_BIN = os.environ.get("LRTUNE_SERVER_BIN")
WORKER_BIN = os.environ.get("LRTUNE_WORKER_BIN")
CLI_BIN = os.environ.get("LRTUNE_BIN")
SCRIPT = os.path.join(HERE, "python_loop", "own_loop.py")
FASHION = "/usr/local/share/lrtune/datasets/fashion-mnist"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fashion(n):
    """The first n Fashion-MNIST training images (uint8 [n, 28, 28]) and
    labels."""
    with gzip.open(os.path.join(FASHION, "train-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    with gzip.open(os.path.join(FASHION, "train-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return x, y


class Server:
    """lrtune-server on a loopback port with its store in `dir`."""

    def __init__(self, dir, port):
        self.dir, self.port, self.proc, self.log = dir, port, None, None
        self.log_path = os.path.join(dir, "server.log")

    def start(self):
        self.close_log()
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [SERVER_BIN, "--listen", f"127.0.0.1:{self.port}",
             "--db", os.path.join(self.dir, "server.db")], stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("lrtune-server did not listen")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        self.close_log()

    def close_log(self):
        if self.log is not None:
            self.log.close()
            self.log = None


def watch_points(server, job_id):
    """(seed_index, step, lr) of the job's stored points, from `lrtune
    watch --json`."""
    out = subprocess.run([CLI_BIN, "watch", job_id, "--server",
                          f"127.0.0.1:{server.port}", "--json"],
                         check=True, capture_output=True, text=True).stdout
    points = []
    for line in out.splitlines():
        event = json.loads(line)
        if "point" in event:
            p = event["point"]["point"]
            points.append((p.get("seedIndex", 0), int(p.get("step", 0)), p["lr"]))
    return points


@unittest.skipUnless(SERVER_BIN and CLI_BIN, "LRTUNE_SERVER_BIN/LRTUNE_BIN unset")
class OwnLoopAgainstAServer(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data = os.path.join(cls.tmp.name, "images")
        os.makedirs(cls.data)
        x, y = fashion(2048)
        for i in range(len(x)):
            np.save(os.path.join(cls.data, f"{i:05d}_{y[i]}.npy"), x[i])
        cls.server = Server(cls.tmp.name, free_port())
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def run_script(self, out, **popen):
        return subprocess.Popen(
            [sys.executable, SCRIPT, "--data", self.data, "--server",
             f"127.0.0.1:{self.server.port}", "--out", out],
            env=dict(os.environ, OMP_NUM_THREADS="1"), text=True, **popen)

    def check_curve(self, result):
        points = watch_points(self.server, result["job_id"])
        steps = [p[1] for p in points]
        # Every step exactly once, in order, at the LR the script applied,
        # up to the one that diverged (the script hears the stop a few
        # updates later; those are dropped).
        self.assertEqual(steps, list(range(len(points))))
        self.assertLessEqual(len(points), len(result["applied_lrs"]))
        self.assertEqual([p[2] for p in points],
                         result["applied_lrs"][:len(points)])
        return points

    def test_the_model_cannot_be_scripted(self):
        sys.path.insert(0, os.path.dirname(SCRIPT))
        try:
            import own_loop
        finally:
            sys.path.pop(0)
        with self.assertRaises(Exception):
            torch.jit.script(own_loop.Net())

    def test_the_script_gets_a_recommendation(self):
        out = os.path.join(self.tmp.name, "plain.json")
        proc = self.run_script(out, stdout=subprocess.DEVNULL)
        self.assertEqual(proc.wait(timeout=600), 0)
        with open(out) as f:
            result = json.load(f)
        self.assertGreater(result["min_lr"], 0)
        self.assertGreater(result["max_lr"], result["min_lr"])
        self.assertGreater(result["stepsize_iterations"], 0)
        self.assertIn("diverged", result["end_reason"])
        points = self.check_curve(result)
        self.assertEqual(result["points"], len(points))
        print(f"\nown loop: {len(points)} updates, bounds {result['min_lr']:.3g}.."
              f"{result['max_lr']:.3g}, {result['end_reason']}", file=sys.stderr)

    def test_the_coordinator_killed_and_restarted_mid_test(self):
        out = os.path.join(self.tmp.name, "killed.json")
        proc = self.run_script(out, stdout=subprocess.PIPE)
        killed_at = None
        for line in proc.stdout:
            if line.startswith("update ") and int(line.split()[1]) >= 60:
                killed_at = int(line.split()[1])
                self.server.kill()
                break
        self.assertIsNotNone(killed_at, "the script ended before update 60")
        # The script trains on while the coordinator is away.
        time.sleep(1.5)
        self.server.start()
        rest = proc.stdout.read()
        proc.stdout.close()
        self.assertEqual(proc.wait(timeout=600), 0, rest[-2000:])
        with open(out) as f:
            result = json.load(f)
        points = self.check_curve(result)
        self.assertGreater(len(points), killed_at)
        self.assertGreater(result["max_lr"], result["min_lr"])
        print(f"\nkilled at update {killed_at}: {len(points)} updates stored once, "
              f"bounds {result['min_lr']:.3g}..{result['max_lr']:.3g}",
              file=sys.stderr)


def small_loop(lrtune, **options):
    """A short RangeTest of a tiny model on overlapping blobs; returns it."""
    torch.manual_seed(0)
    y = torch.arange(512) % 2
    x = torch.randn(512, 8) + (y.float() - 0.5).unsqueeze(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with lrtune.RangeTest(model, opt, steps=60, end_lr=100, **options) as rt:
        for i in range(10000):
            idx = torch.arange(i * 32, i * 32 + 32) % 512
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if rt.step(loss):
                break
    return rt


@unittest.skipUnless(SERVER_BIN, "LRTUNE_SERVER_BIN unset")
class TlsAndTokens(unittest.TestCase):
    """server= with TLS and tokens, as the CLI's --tls-ca and --token-file:
    a client's run on its own job, another owner's job refused as missing,
    no token and a wrong CA refused."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name

        def openssl(*args):
            subprocess.run(["openssl", *args], cwd=d, check=True,
                           capture_output=True)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=lrtune test CA", "-keyout", "ca.key", "-out", "ca.pem")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=other CA", "-keyout", "other.key", "-out", "other.pem")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                "-keyout", "server.key", "-out", "server.csr")
        with open(os.path.join(d, "san.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey",
                "ca.key", "-CAcreateserial", "-days", "1", "-extfile", "san.ext",
                "-out", "server.pem")
        tokens = {"alice": "alice-token-0123456789abcdef",
                  "bob": "bob-token-0123456789abcdef0"}
        with open(os.path.join(d, "tokens"), "w") as f:
            for name, token in tokens.items():
                f.write(f"client {name} {token}\n")
        os.chmod(os.path.join(d, "tokens"), 0o600)
        for name, token in tokens.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(token + "\n")
        cls.port = free_port()
        cls.log = open(os.path.join(d, "server.log"), "ab")
        cls.proc = subprocess.Popen(
            [SERVER_BIN, "--listen", f"127.0.0.1:{cls.port}", "--db",
             os.path.join(d, "server.db"), "--tls-cert", os.path.join(d, "server.pem"),
             "--tls-key", os.path.join(d, "server.key"),
             "--tokens-file", os.path.join(d, "tokens")], stderr=cls.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", cls.port)) == 0:
                    break
            time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait()
        cls.log.close()
        cls.tmp.cleanup()

    def options(self, who="alice", ca="ca.pem", **more):
        d = self.tmp.name
        out = dict(server=f"127.0.0.1:{self.port}", tls_ca=os.path.join(d, ca), **more)
        if who:
            out["token_file"] = os.path.join(d, who)
        return out

    def test_a_run_over_tls_with_a_token(self):
        import lrtune
        rt = small_loop(lrtune, **self.options(tls_server_name="localhost"))
        self.assertGreater(rt.result.max_lr, 0)
        self.assertIn("diverged", rt.end_reason)

    def test_another_owners_job_no_token_and_a_wrong_ca_are_refused(self):
        import lrtune
        alice = small_loop(lrtune, **self.options(seeds=2))
        with self.assertRaises(lrtune.LrtuneError) as bob:
            small_loop(lrtune, job=alice.job_id, **self.options("bob"))
        self.assertEqual(bob.exception.code.name, "NOT_FOUND")
        with self.assertRaises(lrtune.LrtuneError) as anonymous:
            small_loop(lrtune, **self.options(None))
        self.assertEqual(anonymous.exception.code.name, "UNAUTHENTICATED")
        with self.assertRaises(lrtune.LrtuneError) as wrong_ca:
            small_loop(lrtune, **self.options(ca="other.pem"))
        self.assertEqual(wrong_ca.exception.code.name, "UNAVAILABLE")
        # Alice's second run is still hers to take.
        second = small_loop(lrtune, job=alice.job_id, **self.options())
        self.assertEqual(second.run_index, 1)
        self.assertEqual(second.result.recommendation.seeds, 2)


@unittest.skipUnless(SERVER_BIN and WORKER_BIN and CLI_BIN,
                     "LRTUNE_SERVER_BIN/LRTUNE_WORKER_BIN/LRTUNE_BIN unset")
class ClientAgainstWorker(unittest.TestCase):
    """The same MLP (the same initial weights), the same data, batches and
    seed: the worker's engine trains it from TorchScript, a Python loop
    with lrtune.RangeTest in it trains it in eager PyTorch. The loop draws
    its batches as the engine does (worker/trainer.cc: per epoch a
    randperm from a generator seeded seed x 1000003 + epoch, after the
    split's permutation from split_seed), so the two curves are the same
    training; the bounds must agree within 0.1 decade."""

    def test_bounds_agree_within_a_tenth_of_a_decade(self):
        import copy

        import lrtune
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(tmp, free_port())
            server.start()
            with open(os.path.join(tmp, "worker.log"), "wb") as log:
                worker = subprocess.Popen(
                    [WORKER_BIN, "--server", f"127.0.0.1:{server.port}",
                     "--devices", "cpu", "--slots", "1", "--threads", "1"],
                    stderr=log)
                try:
                    self.compare(lrtune, copy, f"127.0.0.1:{server.port}")
                finally:
                    worker.terminate()
                    worker.wait()
                    server.stop()

    def compare(self, lrtune, copy, target):
        torch.set_num_threads(1)
        n, batch, seed, steps = 8192, 128, 7, 200
        xs, ys = fashion(n)
        x = torch.from_numpy(xs.reshape(n, -1).astype(np.float32)) / 255.0
        y = torch.from_numpy(ys.astype(np.int64))
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 10))
        ours = copy.deepcopy(model)
        common = dict(start_lr=1e-5, end_lr=10.0, steps=steps)
        with lrtune.Client(target) as client:
            worker = client.range_test_module(
                model, x, y, batch_size=batch, seeds=[seed], momentum=0.9,
                validation_fraction=0.0, device="cpu", **common)
        # The engine's batches: the split's permutation (split_seed 0, no
        # validation), then one permutation per epoch.
        split = torch.randperm(n, generator=torch.Generator().manual_seed(0))
        x, y = x[split], y[split]
        per_epoch = n // batch
        optimizer = torch.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
        with lrtune.RangeTest(ours, optimizer, iters_per_epoch=per_epoch,
                              server=target, **common) as rt:
            for step in range(steps):
                epoch = step // per_epoch
                if step % per_epoch == 0:
                    perm = torch.randperm(n, generator=torch.Generator().manual_seed(
                        seed * 1000003 + epoch))
                idx = perm[(step % per_epoch) * batch:(step % per_epoch + 1) * batch]
                loss = torch.nn.functional.cross_entropy(ours(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if rt.step(loss):
                    break
        client = rt.result
        gap_max = abs(math.log10(client.max_lr / worker.max_lr))
        gap_min = abs(math.log10(client.min_lr / worker.min_lr))
        print(f"\nworker bounds {worker.min_lr:.4g}..{worker.max_lr:.4g} "
              f"({worker.points} points), client {client.min_lr:.4g}.."
              f"{client.max_lr:.4g} ({client.points} points): gaps "
              f"{gap_min:.3f} / {gap_max:.3f} decades", file=sys.stderr)
        self.assertLessEqual(gap_max, 0.1)
        self.assertLessEqual(gap_min, 0.1)
        self.assertEqual(client.stepsize_iterations, worker.stepsize_iterations)


if __name__ == "__main__":
    unittest.main()
