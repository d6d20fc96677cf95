#!/usr/bin/python3
"""Turns the quality study's results into the gap table (bench/quality/README.md).

    /usr/bin/python3 bench/quality/report.py bench/quality/settings.json \
        bench/quality/results > bench/quality/results.md

Reads curves-*.jsonl, advice.jsonl and runs-*.jsonl from the results folder,
and candidates.jsonl where rule_screen.py wrote one: its `oracle_again` lines
(the oracle's own grid LR trained at fresh seeds) give the "oracle again"
column, the gap a rule that lands exactly on the oracle's LR would show.
For every setting and budget, the oracle is the best mean validation accuracy
(over the seeds) of the 1cycle max_lr grid; a rule's gap is the oracle's
accuracy minus the mean accuracy of the runs trained at the rule's LR, in
points (percent). A run whose loss went non-finite counts at chance accuracy.
Only the standard library: it runs anywhere python3 does.
"""
import glob
import json
import math
import os
import statistics
import sys

RULES = [("lrtune", "lrtune"), ("fastai_valley", "valley"),
         ("fastai_minimum", "min/10"), ("fastai_steep", "steep"),
         ("lrfinder_steepest", "lr-finder")]
CLASSES = {"fashion-mnist": 10, "digits": 10, "breast-cancer": 2}


def g6(x):
    return "%.6g" % x


def key(setting, schedule, max_lr, min_lr, epochs, seed):
    return "|".join([setting, schedule, g6(max_lr), g6(min_lr), str(epochs),
                     str(seed)])


def read_lines(pattern):
    out = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a torn last line of a killed run
    return out


def log_grid(lo, hi, n):
    return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]


class Study:
    def __init__(self, settings_path, results):
        with open(settings_path) as f:
            self.settings = json.load(f)["settings"]
        self.runs = {}
        for r in read_lines(os.path.join(results, "runs-*.jsonl")):
            self.runs[r["key"]] = r
        self.advice = {}
        for a in read_lines(os.path.join(results, "advice.jsonl")):
            self.advice[(a["setting"], a["rule"], a["schedule"])] = a
        # setting -> {lr (6 digits): fresh seeds} for the oracle trained again
        self.again = {}
        for c in read_lines(os.path.join(results, "candidates.jsonl")):
            if c["rule"] == "oracle_again":
                self.again.setdefault(c["setting"], {})[g6(c["max_lr"][0])] = (
                    c["seeds"])

    def accuracy(self, s, schedule, max_lr, min_lr, epochs, seed):
        """Validation accuracy in percent, chance if diverged, None if not run."""
        r = self.runs.get(key(s["id"], schedule, max_lr, min_lr, epochs, seed))
        if r is None or ("val_accuracy" not in r and not r.get("diverged")):
            return None
        if r.get("diverged"):
            return 100.0 / CLASSES[s["job"]["data"]["name"]]
        return 100.0 * r["val_accuracy"]

    def mean_accuracy(self, s, schedule, lrs, min_lrs, epochs, seeds=None):
        seeds = seeds or s["job"]["range_test"]["seeds"]
        accs = []
        for i, seed in enumerate(seeds):
            if i >= len(lrs) or not (lrs[i] and lrs[i] > 0):
                return None
            a = self.accuracy(s, schedule, lrs[i], min_lrs[i] if min_lrs else 0.0,
                              epochs, seed)
            if a is None:
                return None
            accs.append(a)
        return statistics.mean(accs)

    def grid(self, s, schedule, epochs):
        """[(lr, mean accuracy over the seeds)] for the oracle grid, or None
        while any point is untrained."""
        seeds = s["job"]["range_test"]["seeds"]
        out = []
        for lr in log_grid(s["grid"][0], s["grid"][1], s.get("grid_points", 13)):
            lo = lr / 4.0 if schedule == "triangular" else 0.0
            acc = self.mean_accuracy(s, schedule, [lr] * len(seeds),
                                     [lo] * len(seeds), epochs)
            if acc is None:
                return None
            out.append((lr, acc))
        return out

    def oracle(self, s, schedule, epochs):
        """(best lr, best mean accuracy, at_edge) over the grid, or None."""
        grid = self.grid(s, schedule, epochs)
        if grid is None:
            return None
        j = max(range(len(grid)), key=lambda k: grid[k][1])
        return grid[j] + (j in (0, len(grid) - 1),)

    def rows(self):
        for s in self.settings:
            for epochs in s["budgets"]:
                o = self.oracle(s, "one_cycle", epochs)
                if o is None:
                    continue
                row = {"setting": s["id"], "split": s.get("split", "choose"),
                       "epochs": epochs, "oracle_lr": o[0], "oracle_acc": o[1],
                       "oracle_at_edge": o[2]}
                for rule, _ in RULES:
                    a = self.advice.get((s["id"], rule, "one_cycle"))
                    if a is None:
                        continue
                    acc = self.mean_accuracy(s, "one_cycle", a["max_lr"], None,
                                             epochs)
                    row[rule + "_lr"] = median_log(a["max_lr"])
                    row[rule + "_gap"] = None if acc is None else o[1] - acc
                lr = self.advice.get((s["id"], "lrtune", "one_cycle"))
                if lr:
                    d = lr["detail"]
                    row["spread"] = spread_decades(d["per_seed_max_lr"])
                    row["warnings"] = d["warnings"]
                fresh = self.again.get(s["id"], {}).get(g6(o[0]))
                if fresh:
                    acc = self.mean_accuracy(s, "one_cycle", [o[0]] * len(fresh),
                                             None, epochs, fresh)
                    if acc is not None:
                        row["again_gap"] = o[1] - acc
                c = self.oracle(s, "triangular", epochs)
                a = self.advice.get((s["id"], "lrtune", "triangular"))
                if c is not None and a is not None:
                    acc = self.mean_accuracy(s, "triangular", a["max_lr"],
                                             a["min_lr"], epochs)
                    row["clr_oracle_lr"] = c[0]
                    row["clr_gap"] = None if acc is None else c[1] - acc
                yield row


def median_log(values):
    v = [math.log(x) for x in values if x and x > 0]
    return math.exp(statistics.median(v)) if v else float("nan")


def spread_decades(values):
    v = [x for x in values if x and x > 0]
    return math.log10(max(v) / min(v)) if v else float("nan")


def fmt(x, spec="%.2f"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else spec % x


def summary(rows, label):
    gaps = [r["lrtune_gap"] for r in rows if r.get("lrtune_gap") is not None]
    if not gaps:
        return "%s: no rows yet" % label
    behind = []
    for r in rows:
        classic = [r.get(k + "_gap") for k, _ in RULES[1:]]
        classic = [g for g in classic if g is not None]
        if classic and r.get("lrtune_gap") is not None:
            behind.append(r["lrtune_gap"] - min(classic))
    spreads = [r["spread"] for r in rows if "spread" in r]
    clr = [r["clr_gap"] for r in rows if r.get("clr_gap") is not None]
    again = [r["again_gap"] for r in rows if r.get("again_gap") is not None]
    parts = [
        "%s: %d rows" % (label, len(gaps)),
        "lrtune gap max %.2f, mean %.2f points" % (max(gaps), statistics.mean(gaps)),
        "rows over 0.5: %d" % sum(g > 0.5 for g in gaps),
        "worst lag behind the best classic rule %.2f points (rows over 0.3: %d)"
        % (max(behind) if behind else float("nan"), sum(b > 0.3 for b in behind)),
        "seed spread max %.2f decades" % (max(spreads) if spreads else float("nan")),
    ]
    if again:
        parts.append("the oracle's own LR at fresh seeds: gap max %.2f, mean %.2f, "
                     "rows over 0.5: %d" % (max(again), statistics.mean(again),
                                            sum(g > 0.5 for g in again)))
    if clr:
        parts.append("CLR gap max %.2f, mean %.2f" % (max(clr), statistics.mean(clr)))
    for k, name in RULES[1:]:
        g = [r[k + "_gap"] for r in rows if r.get(k + "_gap") is not None]
        if g:
            parts.append("%s mean %.2f max %.2f" % (name, statistics.mean(g), max(g)))
    return "; ".join(parts)


def by_split(rows):
    """(label, rows) for all rows, then the choose and the holdout rows."""
    yield "all", rows
    for split in ("choose", "holdout"):
        yield split, [r for r in rows if r["split"] == split]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: report.py SETTINGS.json RESULTS_DIR")
    study = Study(sys.argv[1], sys.argv[2])
    rows = list(study.rows())
    print("| setting | split | epochs | oracle max_lr | oracle acc | lrtune max_lr"
          " | lrtune | valley | min/10 | steep | lr-finder | CLR lrtune | spread"
          " | oracle again | warnings |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        edge = " (edge)" if r["oracle_at_edge"] else ""
        print("| %s | %s | %d | %s%s | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["setting"], r["split"], r["epochs"], fmt(r["oracle_lr"], "%.3g"), edge,
            r["oracle_acc"], fmt(r.get("lrtune_lr"), "%.3g"),
            fmt(r.get("lrtune_gap")), fmt(r.get("fastai_valley_gap")),
            fmt(r.get("fastai_minimum_gap")), fmt(r.get("fastai_steep_gap")),
            fmt(r.get("lrfinder_steepest_gap")), fmt(r.get("clr_gap")),
            fmt(r.get("spread")), fmt(r.get("again_gap")),
            " ".join(r.get("warnings", []))))
    print()
    for label, split_rows in by_split(rows):
        print("- " + summary(split_rows, label))


if __name__ == "__main__":
    main()
