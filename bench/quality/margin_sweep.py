#!/usr/bin/python3
"""How far below the divergence LR max_lr should stay, by the optimizer's momentum.

    /usr/bin/python3 bench/quality/margin_sweep.py [BUILD_DIR] > bench/quality/margin_sweep.md

Reads each setting's recorded range-test curves (results/curves-*.jsonl) with
`lrtune analyze --momentum M` for M in 0, 0.8 and 0.9, which cap max_lr at
the last LR before divergence / 3, / 5 and / 10 (core/curve_analysis.h
DivergenceMargin), aggregates the seeds as the service does (the median),
and reads each LR's accuracy off the setting's oracle grid, interpolated in
log LR (no training: a screen, which the study's advice stage then checks by
training). Prints the mean and worst gap per split and momentum group.
Only the standard library and the lrtune binary.
"""
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import report  # noqa: E402

MOMENTA = [(0.0, 3), (0.8, 5), (0.9, 10)]  # --momentum, the margin it gives


def analyze(lrtune, seed, iters_per_epoch, momentum):
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write("step,lr,loss\n")
        for i, (lr, loss) in enumerate(zip(seed["lr"], seed["loss"])):
            f.write("%d,%r,%r\n" % (i, lr, float("nan") if loss is None
                                    else loss))
        path = f.name
    try:
        out = subprocess.run(
            [lrtune, "analyze", "--csv", path, "--json", "--momentum",
             str(momentum), "--iters-per-epoch", str(iters_per_epoch)],
            capture_output=True, text=True, check=True)
    finally:
        os.unlink(path)
    return json.loads(out.stdout)["max_lr"]


def median(values):
    values = sorted(v for v in values if v and v > 0)
    return values[len(values) // 2] if values else None


def interpolate(grid, lr):
    if lr <= grid[0][0]:
        return grid[0][1]
    if lr >= grid[-1][0]:
        return grid[-1][1]
    for (l0, a0), (l1, a1) in zip(grid, grid[1:]):
        if l0 <= lr <= l1:
            t = math.log(lr / l0) / math.log(l1 / l0)
            return a0 + t * (a1 - a0)
    return None


def optimizer_momentum(setting):
    o = setting["job"]["optimizer"]
    if o["kind"] in ("adam", "adamw"):
        return o.get("beta1", 0.9)
    return o.get("momentum", 0.0)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    lrtune = os.path.join(build, "client", "lrtune")
    results = os.path.join(HERE, "results")
    study = report.Study(os.path.join(HERE, "settings.json"), results)
    curves = {c["setting"]: c for c in
              report.read_lines(os.path.join(results, "curves-*.jsonl"))}
    rows = []
    for s in study.settings:
        c = curves.get(s["id"])
        if c is None:
            continue
        lrs = {m: median(analyze(lrtune, seed, c["iters_per_epoch"], m)
                         for seed in c["seeds"]) for m, _ in MOMENTA}
        lo, hi = s["grid"]
        for epochs in s["budgets"]:
            grid = []
            for lr in report.log_grid(lo, hi, s["grid_points"]):
                acc = study.mean_accuracy(s, "one_cycle", [lr] * 3, [0.0] * 3,
                                          epochs)
                if acc is not None:
                    grid.append((lr, acc))
            if not grid:
                continue
            best = max(a for _, a in grid)
            rows.append({"id": s["id"], "split": s["split"], "epochs": epochs,
                         "momentum": optimizer_momentum(s),
                         "gaps": {m: best - interpolate(grid, lrs[m])
                                  for m, _ in MOMENTA},
                         "lrs": lrs})
    print("| split | optimizer momentum | rows | " +
          " | ".join("margin %d: mean / max" % g for _, g in MOMENTA) + " |")
    print("|---|---|---|" + "---|" * len(MOMENTA))
    for split in ("choose", "holdout"):
        for group, test in (("0", lambda x: x == 0), ("0.9", lambda x: x > 0)):
            sel = [r for r in rows if r["split"] == split and
                   test(r["momentum"])]
            if not sel:
                continue
            cells = ["%.2f / %.2f" % (statistics.mean(r["gaps"][m] for r in sel),
                                      max(r["gaps"][m] for r in sel))
                     for m, _ in MOMENTA]
            print("| %s | %s | %d | %s |" % (split, group, len(sel),
                                             " | ".join(cells)))


if __name__ == "__main__":
    main()
