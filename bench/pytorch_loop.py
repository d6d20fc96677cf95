#!/usr/bin/python3
"""The baseline for engine_bench: a plain PyTorch eager loop, as a typical
user writes a range test (DataLoader over a TensorDataset with shuffle, LR
set before every step, loss.item() every step). Same data (Fashion-MNIST,
standardised like the engine), model, batch, optimizer (SGD) and threads.

  /usr/bin/python3 bench/pytorch_loop.py --model mlp --threads 1 --steps 500

Prints one JSON line with steps_per_s. With --range-test it is instead a
whole range test as a user writes one (bench/whole_process.sh times the
process): --seeds K curves one after another, the LR ramped exponentially
from 1e-7 to 10 over --steps steps, a bias-corrected EMA (0.98) of the loss,
each curve stopped once the smoothed loss is 4x its best.

  /usr/bin/python3 bench/pytorch_loop.py --range-test --model tiny_mlp \
      --subset 20000 --steps 300 --seeds 3
"""
import argparse
import contextlib
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.2860, 0.3530


def find_dir():
    env = os.environ.get("LRTUNE_DATA_DIR")
    for d in ([os.path.join(env, "fashion-mnist")] if env else []) + [
            "/usr/local/share/lrtune/datasets/fashion-mnist",
            "/usr/share/datasets/fashion-mnist"]:
        if os.path.isdir(d):
            return d
    raise SystemExit("fashion-mnist not found")


def load(subset):
    d = find_dir()
    with gzip.open(os.path.join(d, "train-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(d, "train-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    if subset:
        x, y = x[:subset], y[:subset]
    x = (torch.from_numpy(x.astype(np.float32)) / 255.0 - MEAN) / STD
    return x, torch.from_numpy(y.astype(np.int64))


class Cnn(nn.Module):
    """The engine's cnn: conv5x5(16)-relu-pool-conv5x5(32)-relu-pool-fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def make_model(name):
    if name == "cnn":
        return Cnn()
    hidden = {"tiny_mlp": [32], "mlp": [256, 256]}[name]
    layers, width = [nn.Flatten()], 784
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="mlp", choices=["tiny_mlp", "mlp", "cnn"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--subset", type=int, default=0)
    p.add_argument("--cuda-graph", action="store_true")  # accepted, unused
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--range-test", action="store_true")
    p.add_argument("--seeds", type=int, default=1)
    return p.parse_args()


START_LR, END_LR = 1e-3, 5e-2


def train_step(model, opt, xb, yb, done, steps, autocast):
    """One step of an exponential LR ramp, reading the loss as lr finders do."""
    lr = START_LR * (END_LR / START_LR) ** (done / max(1, steps - 1))
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    with autocast():
        loss = F.cross_entropy(model(xb), yb)
    loss.backward()
    opt.step()
    loss.item()


def autocast_for(a):
    return ((lambda: torch.autocast("cuda", torch.bfloat16)) if a.bf16
            else contextlib.nullcontext)


def timed(a, run):
    """Runs a.warmup untimed steps, then a.steps timed ones; returns seconds."""
    run(a.warmup)
    t0 = time.perf_counter()
    run(a.steps)
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def report(impl, a, seconds):
    print(json.dumps({"impl": impl, "model": a.model, "device": a.device,
                      "threads": a.threads, "batch": a.batch,
                      "steps": a.steps, "seconds": seconds,
                      "steps_per_s": a.steps / seconds,
                      "torch": torch.__version__}))


def setup(a):
    """Threads, seed, data (on the CPU), model and optimizer for run `a`."""
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    x, y = load(a.subset)
    model = make_model(a.model).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=START_LR)
    return device, x, y, model, opt, autocast_for(a)


def range_test(a):
    """K seeds' range tests, one after another, on the loaded data."""
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    x, y = load(a.subset)
    start_lr, end_lr, beta = 1e-7, 10.0, 0.98
    steps_run = 0
    t0 = time.perf_counter()
    for seed in range(a.seeds):
        torch.manual_seed(seed)
        model = make_model(a.model).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=start_lr)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x, y), batch_size=a.batch,
            shuffle=True, drop_last=True)
        avg, best, t = 0.0, float("inf"), 0
        while t < a.steps:
            for xb, yb in loader:
                if t == a.steps:
                    break
                lr = start_lr * (end_lr / start_lr) ** (t / (a.steps - 1))
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xb.to(device)), yb.to(device))
                loss.backward()
                opt.step()
                avg = beta * avg + (1 - beta) * loss.item()
                smoothed = avg / (1 - beta ** (t + 1))
                t += 1
                steps_run += 1
                best = min(best, smoothed)
                if not math.isfinite(smoothed) or smoothed > 4 * best:
                    t = a.steps  # diverged: this seed is done
                    break
    print(json.dumps({"impl": "pytorch", "model": a.model, "seeds": a.seeds,
                      "steps_run": steps_run,
                      "test_seconds": time.perf_counter() - t0,
                      "torch": torch.__version__}))


def main():
    a = parse_args()
    if a.range_test:
        range_test(a)
        return
    device, x, y, model, opt, autocast = setup(a)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=a.batch,
        shuffle=True, drop_last=True)

    def run(steps):
        done = 0
        while done < steps:
            for xb, yb in loader:
                if done == steps:
                    break
                train_step(model, opt, xb.to(device), yb.to(device), done,
                           steps, autocast)
                done += 1

    report("pytorch", a, timed(a, run))


if __name__ == "__main__":
    main()
