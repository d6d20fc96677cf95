#!/usr/bin/env python3
"""A strong PyTorch baseline for the GPU check: the data sits on the device
and batches are gathered by a per-epoch permutation (what the engine does),
with no DataLoader; otherwise the same loop as pytorch_loop.py (same models,
data, SGD, exponential LR ramp, loss.item() every step as lr finders do).

    python3 bench/pytorch_device_loop.py --model cnn --device cuda --steps 2000
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_loop import parse_args, report, setup, timed, train_step  # noqa



def main():
    a = parse_args()
    device, x, y, model, opt, autocast = setup(a)
    x, y = x.to(device), y.to(device)
    n = x.shape[0] // a.batch

    def run(steps):
        done = 0
        while done < steps:
            perm = torch.randperm(x.shape[0], device=device)
            for b in range(n):
                if done == steps:
                    break
                idx = perm[b * a.batch:(b + 1) * a.batch]
                train_step(model, opt, x.index_select(0, idx),
                           y.index_select(0, idx), done, steps, autocast)
                done += 1

    report("pytorch-on-device", a, timed(a, run))


if __name__ == "__main__":
    main()
