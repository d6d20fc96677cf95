#!/usr/bin/python3
"""Golden vectors for fastai's LR-finder suggestions (valley, slide, minimum, steep).

The four functions below restate fastai's algorithms (fastai/callback/schedule.py,
as docs/analysis.md describes them) in plain Python and
numpy, written for lrtune; they run on fixed (lr, loss) vectors and the
results go to tests/golden/analysis_fastai.json, which core/suggestions_test.cc
compares index for index.

fastai computes `steep` on float32 tensors; this script computes it in float64
(as lrtune does) and also in float32 with torch, and keeps a vector's steep
index only where both agree and the best slope is clearly separated from the
runner-up, so the golden value does not depend on rounding.

Run with Debian's interpreter (numpy + torch):
    /usr/bin/python3 scripts/gen_golden_analysis.py > tests/golden/analysis_fastai.json
"""
import json
import math
import os
import sys

import numpy as np
import torch


def valley(losses):
    """fastai valley: O(n^2) longest strictly decreasing subsequence."""
    n = len(losses)
    lds = [1] * n
    start, end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[end] < lds[i]:
                end = i
                start = end - lds[end]
    third = (end - start) / 3
    idx = start + int(third) + int(third / 2)
    return idx % n  # Python indexing: -1 is the last point


def slide(losses, lr_diff=15, thresh=0.005):
    """fastai slide; None where fastai raises IndexError (too few points)."""
    n = len(losses)
    if n < lr_diff + 1:
        return None
    grad = np.gradient(np.asarray(losses, dtype=np.float64))
    right = n - 1
    left = right - lr_diff
    found = left
    while left >= 0 and abs(grad[right] - grad[left]) > thresh:
        found = left
        right -= 1
        left -= 1
    return found


def minimum(losses):
    """fastai minimum: index of the (first) lowest loss; lr is lrs[i] / 10."""
    return int(np.argmin(np.asarray(losses, dtype=np.float64)))


def steep(lrs, losses):
    """fastai steep: argmin of forward differences in ln(lr); None if ambiguous."""
    if len(losses) < 2:
        return None
    lr64 = np.asarray(lrs, dtype=np.float64)
    loss64 = np.asarray(losses, dtype=np.float64)
    grads = (loss64[1:] - loss64[:-1]) / (np.log(lr64[1:]) - np.log(lr64[:-1]))
    idx = int(np.argmin(grads))
    lr32 = torch.tensor(lrs, dtype=torch.float32)
    loss32 = torch.tensor(losses, dtype=torch.float32)
    grads32 = (loss32[1:] - loss32[:-1]) / (lr32[1:].log() - lr32[:-1].log())
    if int(grads32.argmin()) != idx:
        return None
    others = np.delete(grads, idx)
    if others.size and abs(others.min() - grads[idx]) <= 1e-6 * (1 + abs(grads[idx])):
        return None
    return idx


def exp_ramp(n, start=1e-7, end=10.0):
    return [start * (end / start) ** (i / (n - 1)) for i in range(n)]


def fastai_smooth(losses, beta=0.98):
    """The recorder's bias-corrected EMA (what fastai's suggestions read)."""
    out, avg = [], 0.0
    for i, x in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * x
        out.append(avg / (1 - beta ** i))
    return out


def u_curve(lrs, offset=0.0):
    out = []
    for lr in lrs:
        x = math.log10(lr)
        out.append(offset + 2.3 - 2.0 / (1 + math.exp(-(x + 4) * 2.5))
                   + 0.02 * math.exp((x + 2) * 4))
    return out


def cases():
    rng = np.random.RandomState(20240611)
    lrs100 = exp_ramp(100)
    clean = u_curve(lrs100)[:86]
    noisy_raw = [v + float(e) for v, e in zip(u_curve(lrs100), rng.normal(0, 0.1, 100))]
    walk = np.cumsum(rng.normal(0, 0.05, 300)) + 3.0
    yield "u_clean", lrs100[:86], clean
    yield "u_noisy_raw", lrs100, noisy_raw
    yield "u_noisy_smoothed", lrs100, fastai_smooth(noisy_raw)
    yield "u_negative", lrs100[:86], u_curve(lrs100, offset=-5.0)[:86]
    yield "random_walk_300", exp_ramp(300, 1e-6, 1.0), [float(v) for v in walk]
    yield "ties_integers", exp_ramp(40), [float(v) for v in rng.randint(0, 5, size=40)]
    yield "increasing", exp_ramp(20), [1.0 + 0.1 * i for i in range(20)]
    yield "constant", exp_ramp(30), [0.7] * 30
    yield "decreasing_2", [1e-3, 1e-2], [1.0, 0.5]
    yield "pair_then_rise", exp_ramp(5), [5.0, 4.0, 6.0, 7.0, 8.0]
    yield "single", [1e-3], [2.0]
    yield "slide_minimal_16", exp_ramp(16, 1e-5, 1e-1), [
        2.0 - 0.1 * i + (0.02 * i * i if i > 9 else 0.0) for i in range(16)]
    yield "strictly_decreasing_50", exp_ramp(50), [3.0 - 0.05 * i for i in range(50)]


def recorder_curve(lrs, raw, num_it, dtype):
    """fastai's lr_find on a recorded run: the recorder's bias-corrected EMA
    (AvgSmoothLoss, beta 0.98) of the raw losses, the test stopped after the
    first point whose smoothed loss passes 4 x the best so far (that point is
    recorded) or before a non-finite loss, then [num_it // 10 : -5]."""
    beta = 0.98
    avg = torch.zeros((), dtype=dtype)
    best = None
    rec_lrs, rec = [], []
    for i, (lr, x) in enumerate(zip(lrs, raw), start=1):
        if not math.isfinite(x):
            break
        avg = torch.lerp(torch.tensor(x, dtype=dtype), avg, beta)
        smooth = float(avg / (1 - beta ** i))
        rec_lrs.append(lr)
        rec.append(smooth)
        if best is None or smooth < best:
            best = smooth
        if smooth > 4 * best:
            break
    end = len(rec) - 5
    return rec_lrs[num_it // 10:end], rec[num_it // 10:end]


def fastai_suggestions(lrs, raw, num_it):
    """lr_find's four suggestions, or None where float32 (fastai's tensors)
    and float64 (lrtune) disagree: then the case is not a fair golden."""
    got = []
    for dtype in (torch.float64, torch.float32):
        l, s = recorder_curve(lrs, raw, num_it, dtype)
        v, sl, m, st = valley(s), slide(s), minimum(s), steep(l, s)
        got.append({"valley_lr": l[v],
                    "slide_lr": None if sl is None else l[sl],
                    "minimum_lr": l[m] / 10,
                    "steep_lr": None if st is None else l[st],
                    "points": len(s)})
    return got[0] if got[0] == got[1] else None


def recorder_cases():
    """Whole recorded range tests: two real ones from the quality study (the
    MLP on Fashion-MNIST under SGD with momentum and under Adam, seed 0, run
    to lr 10) and a synthetic noisy U."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    study = os.path.join(root, "bench/quality/results/curves-0.jsonl")
    wanted = {"mlp-fmnist-sgdm-b128", "mlp-fmnist-adam-b128"}
    with open(study) as f:
        for line in f:
            row = json.loads(line)
            if row["setting"] in wanted:
                seed = row["seeds"][0]
                yield (row["setting"] + "-seed0", seed["lr"], seed["loss"],
                       row["steps"])
    rng = np.random.RandomState(7)
    lrs = exp_ramp(100)
    yield ("u_noisy_recorded", lrs,
           [v + float(e) for v, e in zip(u_curve(lrs), rng.normal(0, 0.1, 100))],
           100)


def main():
    out = {"generator": "scripts/gen_golden_analysis.py",
           "numpy": np.__version__, "torch": torch.__version__, "cases": [],
           "recorder_cases": []}
    for name, lrs, raw, num_it in recorder_cases():
        expected = fastai_suggestions(lrs, raw, num_it)
        if expected is None:
            raise SystemExit(f"{name}: float32 and float64 suggestions differ")
        out["recorder_cases"].append(dict(
            name=name, lrs=lrs, losses=raw, num_it=num_it, **expected))
    for name, lrs, losses in cases():
        v, s, m, st = valley(losses), slide(losses), minimum(losses), steep(lrs, losses)
        out["cases"].append({
            "name": name, "lrs": lrs, "losses": losses,
            "valley_index": v, "valley_lr": lrs[v],
            "slide_index": s, "slide_lr": None if s is None else lrs[s],
            "minimum_index": m, "minimum_lr": lrs[m] / 10,
            "steep_index": st, "steep_lr": None if st is None else lrs[st],
        })
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
