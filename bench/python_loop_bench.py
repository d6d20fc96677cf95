#!/usr/bin/python3
"""What lrtune.RangeTest costs a training loop: the same PyTorch loop timed
bare and with a client-driven range test in it (rt.step(loss) after every
optimizer.step(), the reporter thread sending to the embedded `lrtune
serve`), on CPU with one thread.

    LRTUNE_BIN=build/client/lrtune PYTHONPATH=client/python LRTUNE_GEN_DIR=... \
        /usr/bin/python3 bench/python_loop_bench.py [--reps 7] [--steps 400]

The loop is a user's: a DataLoader over Fashion-MNIST (standardised, in
memory, shuffled, batch 128), F.cross_entropy, SGD with momentum 0.9. Two
models: the MLP 784-256-256-10 and a tiny one, 784-10 (logistic
regression: as little work per step as a model can have, so what RangeTest
adds shows in milliseconds). Bare and RangeTest repetitions alternate
(ABBA), so that a slow spell of the machine hits both; the summary takes
the medians of the wall-clock, of the process's CPU time and of that plus
the embedded service's, per step: the overhead as a share of the bare
step (the MLP) and in milliseconds per step (the tiny model). On a loaded
machine the wall clock is the noisiest; CPU time is what the test costs.
The bare loop trains at LR 0.01 and the plan ramps from 0.01 to 0.0101, so
both train alike (another LR would change the training, not only the
loop) and no run diverges: each runs its `steps` steps. The service's CPU
is read from /proc in clock ticks (10 ms). A third "model", micro, times
what rt.step() adds to the training thread alone (a trivial model on one
fixed batch, 20 x steps updates, the thread's CPU time). Prints one JSON
line per model.
"""

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.2860, 0.3530


def load():
    d = os.path.join(os.environ.get("LRTUNE_DATA_DIR",
                                    "/usr/local/share/lrtune/datasets"),
                     "fashion-mnist")
    with gzip.open(os.path.join(d, "train-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(os.path.join(d, "train-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    x = (torch.from_numpy(x.astype(np.float32)) / 255.0 - MEAN) / STD
    return x, torch.from_numpy(y.astype(np.int64))


def model_of(name):
    torch.manual_seed(0)
    if name == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                             nn.ReLU(), nn.Linear(256, 10))
    return nn.Sequential(nn.Linear(784, 10))


def service_cpu():
    """CPU seconds the embedded `lrtune serve` has used so far."""
    from lrtune import embedded
    with open(f"/proc/{embedded.shared_service()._proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(name, loader, steps, with_lrtune, db):
    """Seconds per step of `steps` steps (after 20 warm-up steps): wall
    clock; this process's CPU time (every thread's: the reporter's too);
    and that plus the embedded service's (another process), everything
    the test costs the machine's cores."""
    import lrtune
    model = model_of(name)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rt = None
    if with_lrtune:
        # A plan within 1% of the bare loop's LR: the same training, so
        # that only what RangeTest does differs.
        rt = lrtune.RangeTest(model, opt, start_lr=0.01, end_lr=0.0101,
                              steps=steps + 20, db=db)
        rt.start()
    done = 0
    start = None
    while done < steps + 20:
        for x, y in loader:
            if done == 20:
                start = time.perf_counter()
                cpu = time.process_time()
                served = service_cpu()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if rt is not None:
                rt.step(loss)
            done += 1
            if done == steps + 20:
                break
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    served = service_cpu() - served
    if rt is not None:
        if rt.done and len(rt.losses) < steps + 20:
            raise SystemExit(f"the range test stopped early: {rt.stop_reason}")
        rt.close()
    return elapsed / steps, cpu / steps, (cpu + served) / steps


def micro(reps, steps, db):
    """What rt.step() adds to the training thread alone: a trivial model
    (Linear(4, 2) on one fixed batch of 8, no DataLoader), the training
    thread's CPU time per update, bare and with RangeTest."""
    import lrtune
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    out = {False: [], True: []}
    for rep in range(reps):
        for with_rt in ((False, True) if rep % 2 == 0 else (True, False)):
            torch.manual_seed(0)
            model = nn.Linear(4, 2)
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            rt = None
            if with_rt:
                rt = lrtune.RangeTest(model, opt, start_lr=0.01, end_lr=0.0101,
                                      steps=steps + 1, db=db)
                rt.start()
            start = time.thread_time()
            for _ in range(steps):
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if rt is not None:
                    rt.step(loss)
            out[with_rt].append((time.thread_time() - start) / steps)
            if rt is not None:
                rt.close()
    b, r = statistics.median(out[False]), statistics.median(out[True])
    return {"model": "micro", "steps": steps, "reps": reps,
            "training_thread_cpu": {
                "bare_us_per_step": round(b * 1e6, 2),
                "rangetest_us_per_step": round(r * 1e6, 2),
                "overhead_us_per_step": round((r - b) * 1e6, 2)}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--models", default="mlp,tiny,micro")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y = load()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=128, shuffle=True,
        drop_last=True, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "jobs.db")
        import lrtune
        lrtune.connect(db=db)  # the embedded service, started once
        for name in args.models.split(","):
            if name == "micro":
                print(json.dumps(micro(args.reps, 20 * args.steps, db)), flush=True)
                continue
            runs = {False: [], True: []}
            for rep in range(args.reps):
                # ABBA: neither variant always runs first.
                order = (False, True) if rep % 2 == 0 else (True, False)
                for with_rt in order:
                    runs[with_rt].append(run(name, loader, args.steps, with_rt, db))
                print(f"{name} rep {rep}: bare {runs[False][-1][0] * 1e3:.3f} "
                      f"ms/step, RangeTest {runs[True][-1][0] * 1e3:.3f} ms/step",
                      file=sys.stderr, flush=True)
            summary = {"model": name, "steps": args.steps, "reps": args.reps}
            for i, clock in enumerate(("wall", "cpu", "cpu_with_service")):
                b = statistics.median(v[i] for v in runs[False])
                r = statistics.median(v[i] for v in runs[True])
                summary[clock] = {
                    "bare_ms_per_step": round(b * 1e3, 4),
                    "rangetest_ms_per_step": round(r * 1e3, 4),
                    "overhead_ms_per_step": round((r - b) * 1e3, 4),
                    "overhead_pct": round(100 * (r - b) / b, 2),
                    "bare_ms_all": [round(v[i] * 1e3, 4) for v in runs[False]],
                    "rangetest_ms_all": [round(v[i] * 1e3, 4) for v in runs[True]],
                }
            print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
