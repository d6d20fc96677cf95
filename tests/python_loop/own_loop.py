#!/usr/bin/python3
"""A training script as a user writes it, with an lrtune range test in its
own loop (tests/python_loop_test.py runs it against a real lrtune-server):

- its model is its own nn.Module whose forward has Python control flow that
  torch.jit.script refuses (stochastic depth drawn with Python's `random`,
  blocks looked up by name at run time), so it could not go to a worker as
  TorchScript;
- its DataLoader reads one .npy image per sample from disk (a directory
  written by tests/python_loop_test.py from Fashion-MNIST, labels in the
  file names) with a random augmentation (flip, shift);
- it accumulates gradients over 2 batches per optimizer update.

    own_loop.py --data DIR [--server HOST:PORT] [--out result.json]

Prints "update N" after every update (the test kills the coordinator on
one) and writes the recommendation and the LR it applied at every update
as JSON to --out.
"""

import argparse
import json
import os
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import lrtune


class NpyImages(torch.utils.data.Dataset):
    """DIR/<index>_<label>.npy, each a 28x28 uint8 image."""

    def __init__(self, root, augment=True):
        self.files = sorted(f for f in os.listdir(root) if f.endswith(".npy"))
        self.root = root
        self.augment = augment

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        name = self.files[i]
        image = torch.from_numpy(np.load(os.path.join(self.root, name)))
        x = (image.float().unsqueeze(0) / 255.0 - 0.286) / 0.353
        if self.augment:
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
            dx, dy = torch.randint(-2, 3, (2,)).tolist()
            x = torch.roll(F.pad(x, (2, 2, 2, 2)), (dy, dx), dims=(1, 2))[:, 2:30, 2:30]
        return x, int(name.split("_")[1].split(".")[0])


class Net(nn.Module):
    """A small residual CNN with stochastic depth decided in Python."""

    def __init__(self, width=16, blocks=3, drop=0.1):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.blocks = nn.ModuleDict({
            f"block{i}": nn.Sequential(nn.Conv2d(width, width, 3, padding=1),
                                       nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))
            for i in range(blocks)})
        self.head = nn.Linear(width, 10)
        self.drop = drop

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.stem(x)), 2)
        for name in sorted(self.blocks.keys()):
            if self.training and random.random() < self.drop:
                continue  # skip the block: Python's random, not TorchScript's
            h = F.relu(h + getattr(self.blocks, name)(h))
        return self.head(h.mean(dim=(2, 3)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--server", default=None)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    loader = torch.utils.data.DataLoader(
        NpyImages(args.data), batch_size=32, shuffle=True, drop_last=True,
        num_workers=1, generator=torch.Generator().manual_seed(args.seed))
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    applied = []
    with lrtune.RangeTest(model, optimizer, start_lr=1e-5, end_lr=10,
                          steps=args.steps, accumulation_steps=2,
                          iters_per_epoch=len(loader) // 2,
                          server=args.server) as rt:
        done = False
        while not done:
            for i, (x, y) in enumerate(loader):
                loss = F.cross_entropy(model(x), y) / 2
                loss.backward()
                if i % 2 == 1:
                    applied.append(optimizer.param_groups[0]["lr"])
                    optimizer.step()
                    optimizer.zero_grad()
                    print(f"update {len(applied)}", flush=True)
                if rt.step(loss):
                    done = True
                    break
    r = rt.result
    out = {"job_id": rt.job_id, "min_lr": r.min_lr, "max_lr": r.max_lr,
           "stepsize_iterations": r.stepsize_iterations,
           "one_cycle": r.one_cycle, "suggestions": r.suggestions,
           "warnings": r.warnings, "points": r.points,
           "end_reason": rt.end_reason, "applied_lrs": applied}
    print(json.dumps({k: v for k, v in out.items() if k != "applied_lrs"}))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
