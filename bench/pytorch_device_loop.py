#!/usr/bin/env python3
"""A strong PyTorch baseline for the GPU check: the data sits on the device
and batches are gathered by a per-epoch permutation (what the engine does),
with no DataLoader; otherwise the same loop as pytorch_loop.py (same models,
data, SGD, exponential LR ramp, loss.item() every step as lr finders do).

    python3 bench/pytorch_device_loop.py --model cnn --device cuda --steps 2000
"""
import argparse
import contextlib
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_loop import load, make_model  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="mlp", choices=["tiny_mlp", "mlp", "cnn"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--subset", type=int, default=0)
    p.add_argument("--bf16", action="store_true")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    x, y = load(a.subset)
    x, y = x.to(device), y.to(device)
    n = x.shape[0] // a.batch
    model = make_model(a.model).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    start_lr, end_lr = 1e-3, 5e-2
    autocast = ((lambda: torch.autocast("cuda", torch.bfloat16)) if a.bf16
                else contextlib.nullcontext)

    def run(steps):
        done = 0
        while done < steps:
            perm = torch.randperm(x.shape[0], device=device)
            for b in range(n):
                if done == steps:
                    break
                idx = perm[b * a.batch:(b + 1) * a.batch]
                xb, yb = x.index_select(0, idx), y.index_select(0, idx)
                lr = start_lr * (end_lr / start_lr) ** (done / max(1, steps - 1))
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.zero_grad(set_to_none=True)
                with autocast():
                    loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                loss.item()
                done += 1

    run(a.warmup)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    run(a.steps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    print(json.dumps({"impl": "pytorch-on-device", "model": a.model,
                      "device": a.device, "batch": a.batch, "steps": a.steps,
                      "seconds": seconds, "steps_per_s": a.steps / seconds,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
