#!/usr/bin/python3
"""Screens candidate max_lr rules on the study's recorded curves, and measures
what limits the goals of issue 13 (bench/quality/README.md).

    /usr/bin/python3 bench/quality/rule_screen.py [BUILD_DIR] \
        > bench/quality/rule_screen.md
    /usr/bin/python3 bench/quality/rule_screen.py --write-candidates
    STAGES=candidates bash bench/quality/run.sh    # trains them (minutes)

No training: every rule reads the recorded range-test curves
(results/curves-*.jsonl) and each LR's accuracy is read off the setting's
oracle grid, interpolated in log LR, as margin_sweep.py does. Rules are
chosen on the `choose` rows; `holdout` rows are reported, never tuned on.

The candidates need pieces core does not compute (other floor levels, other
caps), so the script restates core's analysis (core/curve_analysis.cc: the
divergence monitor, median-5 + zero-lag EMA over 0.1-0.3 decade by the
noise, the floor and the cap) in Python. Section 1 checks the restatement
against core: against every seed's max_lr in results/advice.jsonl
(written by core through quality_study) and, with BUILD_DIR, against
`lrtune analyze` on every curve. A mismatch stops the script.

Needs numpy (Debian's python3-numpy).
"""
import copy
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import report  # noqa: E402

GAP_GOAL, LAG_GOAL, SPREAD_GOAL = 0.5, 0.3, 0.3

# --- core's analysis, restated (docs/analysis.md sections 1, 2 and 4) -------


def causal_divergence(losses, beta=0.98, factor=4.0):
    """Index where DivergenceMonitor fires, or -1."""
    avg, beta_pow, best, first = 0.0, 1.0, math.inf, 0.0
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            return i
        avg = beta * avg + (1 - beta) * loss
        beta_pow *= beta
        s = avg / (1 - beta_pow)
        if i == 0:
            first = best = s
            continue
        best = min(best, s)
        drop = first - best
        diverged = s > factor * best if best > 0 else (
            drop > 0 and s - best > (factor - 1) * drop)
        if drop > 0.1 * abs(first) and s - best >= 0.9 * drop:
            diverged = True
        if diverged:
            return i
    return -1


def running_median(v, half=2):
    return np.array([np.median(v[max(0, i - half):i + half + 1])
                     for i in range(len(v))])


def zero_lag(v, beta):
    def run(x):
        out, avg, beta_pow = np.empty(len(x)), 0.0, 1.0
        for i, t in enumerate(x):
            avg = beta * avg + (1 - beta) * t
            beta_pow *= beta
            out[i] = avg / (1 - beta_pow)
        return out
    return run(run(v)[::-1])[::-1]


def position_beta(lrs, span=1.0):
    """core's zero-lag beta: a span of 0.1 decade (x span) in points."""
    per_decade = (len(lrs) - 1) / math.log10(lrs[-1] / lrs[0])
    return 1 - 1 / max(1.0, 0.1 * span * per_decade)


def step_noise(losses):
    """core's EstimateNoise: the MAD of the first differences, with core's
    median (the upper middle element of an even count)."""
    def median(v):
        return np.partition(v, len(v) // 2)[len(v) // 2]
    d = np.diff(losses)
    return 1.4826 * median(np.abs(d - median(d))) / math.sqrt(2)


class Curve:
    """One seed's curve and the pieces the rules read from it."""

    def __init__(self, lrs, losses):
        self.all_lrs, self.all_losses = np.array(lrs), np.array(losses, float)
        self.diverged_at = causal_divergence(losses)
        used = len(losses) if self.diverged_at < 0 else self.diverged_at
        self.lrs, self.raw = self.all_lrs[:used], self.all_losses[:used]
        self.noise = step_noise(self.raw)
        self.lr_last = self.lrs[-1]
        # core's z (ZeroLagOf): 0.1 decade, x sigma / (0.005 D) on a noisy
        # curve, at most x 3, D read at 0.1 decade.
        self.smooth(1.0)
        if self.depth > 0 and self.noise > 0.005 * self.depth:
            self.smooth(min(3.0, self.noise / (0.005 * self.depth)))

    def smooth(self, span):
        """Reads z over span x 0.1 decade, and what follows from it."""
        self.span = span
        self.z = zero_lag(running_median(self.raw),
                          position_beta(self.lrs, span))
        self.i_min = int(np.argmin(self.z))
        self.i_peak = int(np.argmax(self.z[:self.i_min + 1]))
        self.depth = self.z[self.i_peak] - self.z[self.i_min]
        return self

    def respan(self, span):
        """A copy of this curve read over span x 0.1 decade."""
        c = copy.copy(self)
        return c.smooth(span) if span != self.span else c

    def right_end(self, level):
        i = self.i_min
        while i + 1 < len(self.z) and self.z[i + 1] <= level:
            i += 1
        return self.lrs[i]

    def left_end(self, level):
        i = self.i_min
        while i > 0 and self.z[i - 1] <= level:
            i -= 1
        return self.lrs[i]

    def floor(self, fraction):
        return self.z[self.i_min] + fraction * self.depth

    def climb(self, fraction):
        """First LR after the minimum where z is back up by fraction x D."""
        above = np.nonzero(self.z[self.i_min:] >= self.floor(fraction))[0]
        return self.lrs[self.i_min + above[0]] if len(above) else self.lr_last

    def returned(self):
        """The first LR where z is back 90% of the way to its start, or None
        (the return rule of docs/analysis.md section 1, on the zero-lag curve)."""
        drop = self.z[0] - self.z[self.i_min]
        if not drop > 0.1 * abs(self.z[0]):
            return None
        back = np.nonzero(self.z[self.i_min:] - self.z[self.i_min] >=
                          0.9 * drop)[0]
        return self.lrs[self.i_min + back[0]] if len(back) else None


def momentum(setting):
    o = setting["job"]["optimizer"]
    if o["kind"] in ("adam", "adamw"):
        return o.get("beta1", 0.9)
    return o.get("momentum", 0.0)


def margin(m):
    return min(max(1 / (1 - m), 2.0), 10.0)


def family(setting):
    kind = setting["job"]["optimizer"]["kind"]
    if kind in ("adam", "adamw"):
        return "adam"
    if kind == "rmsprop":
        return "rmsprop"
    return "sgdm" if momentum(setting) > 0 else "sgd"


def core_floor(c, s):
    """core's max_lr before its divergence cap: the floor's right end, x 1.2
    at the least margin (without momentum)."""
    return (1.2 if margin(momentum(s)) <= 2.0 else 1.0) * c.right_end(
        c.floor(0.05))


def core_rule_unscaled(c, s):
    """core's max_lr before the Adam batch scale: core_floor, capped at
    lr_last / margin."""
    return min(core_floor(c, s), c.lr_last / margin(momentum(s)))


def adam_scale(s):
    """core's AdamBatchScale: sqrt(batch / 128) under Adam and AdamW."""
    if family(s) != "adam":
        return 1.0
    return math.sqrt(s["job"].get("batch_size", 128) / 128.0)


def core_rule(c, s):
    """core's max_lr today: core_rule_unscaled x adam_scale, never above the
    cap."""
    cap = c.lr_last / margin(momentum(s))
    return min(core_rule_unscaled(c, s) * adam_scale(s), cap)


def core_rule_before(c, s):
    """core's max_lr until 2026-12-07: the floor's right end, capped at
    lr_last / clamp(1 / (1 - momentum), 3, 10), z over 0.1 decade."""
    c = c.respan(1.0)
    return min(c.right_end(c.floor(0.05)),
               c.lr_last / min(max(1 / (1 - momentum(s)), 3.0), 10.0))


def core_rule_fixed_span(c, s):
    """core's max_lr before the noise widened its smoothing (2026-12-07):
    z over 0.1 decade whatever the noise."""
    return core_rule_unscaled(c.respan(1.0), s)


def log_median(values):
    v = sorted(math.log(x) for x in values if x and x > 0)
    if not v:
        return float("nan")
    n = len(v)
    return math.exp(v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2]))


# --- the study's data -------------------------------------------------------


def interpolate(grid, lr):
    xs = [math.log(x) for x, _ in grid]
    return float(np.interp(math.log(lr), xs, [a for _, a in grid]))


class Data:
    def __init__(self):
        results = os.path.join(HERE, "results")
        self.study = report.Study(os.path.join(HERE, "settings.json"), results)
        self.settings = self.study.settings
        raw = {c["setting"]: c for c in
               report.read_lines(os.path.join(results, "curves-*.jsonl"))}
        self.raw = raw
        self.curves = {
            s["id"]: [Curve(sd["lr"], [math.nan if x is None else x
                                       for x in sd["loss"]])
                      for sd in raw[s["id"]]["seeds"]]
            for s in self.settings}
        self.grids = {}
        for s in self.settings:
            for b in s["budgets"]:
                for sched in ("one_cycle", "triangular"):
                    g = []
                    for lr in report.log_grid(s["grid"][0], s["grid"][1],
                                              s["grid_points"]):
                        low = lr / 4 if sched == "triangular" else 0.0
                        acc = self.study.mean_accuracy(s, sched, [lr] * 3,
                                                       [low] * 3, b)
                        if acc is not None:
                            g.append((lr, acc))
                    if g:
                        self.grids[(s["id"], b, sched)] = g
        self.classic_best = {}
        for r in self.study.rows():
            gaps = [r.get(k + "_gap") for k, _ in report.RULES[1:]]
            self.classic_best[(r["setting"], r["epochs"])] = min(
                g for g in gaps if g is not None)
        self.trained = {(r["setting"], r["epochs"]): r for r in self.study.rows()}

    def gap(self, s, b, lr, sched="one_cycle"):
        g = self.grids[(s["id"], b, sched)]
        return max(a for _, a in g) - interpolate(g, lr)


def evaluate(data, per_seed, aggregate=None):
    """Rows (setting x budget) for a rule: per_seed(curve, setting) -> lr;
    aggregate(curves, setting, per_seed_lrs) -> lr (default: log median)."""
    rows = []
    for s in data.settings:
        cs = data.curves[s["id"]]
        per = [per_seed(c, s) for c in cs]
        lr = aggregate(cs, s, per) if aggregate else log_median(per)
        spread = math.log10(max(per) / min(per))
        for b in s["budgets"]:
            gap = data.gap(s, b, lr)
            rows.append({"id": s["id"], "split": s["split"], "epochs": b,
                         "lr": lr, "gap": gap, "spread": spread,
                         "lag": gap - data.classic_best[(s["id"], b)]})
    return rows


def cells(rows, split):
    r = [x for x in rows if x["split"] == split]
    g = [x["gap"] for x in r]
    return "%.2f | %.2f | %d | %.2f | %d | %.2f" % (
        statistics.mean(g), max(g), sum(x > GAP_GOAL for x in g),
        max(x["lag"] for x in r), sum(x["lag"] > LAG_GOAL for x in r),
        max(x["spread"] for x in r))


SUMMARY_HEAD = ("| rule | choose mean | max | >0.5 | lag max | lag >0.3 | spread "
                "| holdout mean | max | >0.5 | lag max | lag >0.3 | spread |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def summary_line(name, rows):
    return "| %s | %s | %s |" % (name, cells(rows, "choose"),
                                 cells(rows, "holdout"))


# --- 1. the restatement is core ---------------------------------------------


def check_parity(data, build):
    worst, n = 0.0, 0
    for s in data.settings:
        core = data.study.advice[(s["id"], "lrtune", "one_cycle")]
        for c, want in zip(data.curves[s["id"]],
                           core["detail"]["per_seed_max_lr"]):
            worst = max(worst, abs(core_rule(c, s) / want - 1))
            n += 1
    checked = ["%d seed curves against results/advice.jsonl (max relative "
               "difference %.1e)" % (n, worst)]
    if worst > 1e-9:
        sys.exit("rule_screen: the restatement is not core's rule (%.3g)" % worst)
    lrtune = os.path.join(build, "client", "lrtune") if build else None
    if lrtune and os.path.exists(lrtune):
        worst = 0.0
        for s in data.settings:
            for c, seed in zip(data.curves[s["id"]], data.raw[s["id"]]["seeds"]):
                got = analyze(lrtune, seed, s)
                worst = max(worst, abs(core_rule(c, s) / got - 1))
        if worst > 1e-9:
            sys.exit("rule_screen: lrtune analyze disagrees (%.3g)" % worst)
        checked.append("%d curves against `lrtune analyze --momentum M "
                       "--optimizer O --batch-size B` (max relative "
                       "difference %.1e)" % (n, worst))
    return checked


def analyze(lrtune, seed, s):
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write("step,lr,loss\n")
        for i, (lr, loss) in enumerate(zip(seed["lr"], seed["loss"])):
            f.write("%d,%r,%r\n" % (i, lr, math.nan if loss is None else loss))
        path = f.name
    try:
        out = subprocess.run([lrtune, "analyze", "--csv", path, "--json",
                              "--momentum", str(momentum(s)), "--optimizer",
                              s["job"]["optimizer"]["kind"], "--batch-size",
                              str(s["job"].get("batch_size", 128))],
                             capture_output=True, text=True, check=True)
    finally:
        os.unlink(path)
    return json.loads(out.stdout)["max_lr"]


# --- 2. candidates ----------------------------------------------------------


def median_curve(cs):
    n = min(len(c.all_losses) for c in cs)
    med = np.median(np.array([c.all_losses[:n] for c in cs]), axis=0)
    return Curve(list(cs[0].all_lrs[:n]), list(med))


def candidates():
    """(name, per_seed, aggregate): the ideas the brief lists, and more."""
    def floor_right(fraction):
        return lambda c, s: min(c.right_end(c.floor(fraction)),
                                c.lr_last / margin(momentum(s)))

    def noise_floor(k):
        def rule(c, s):
            level = c.z[c.i_min] + max(0.05 * c.depth, k * c.noise)
            return min(c.right_end(level), c.lr_last / margin(momentum(s)))
        return rule

    def tolerant(c, s):  # the floor's last point before z climbs 0.5 D
        top, level, i_r = c.floor(0.5), c.floor(0.05), c.i_min
        for i in range(c.i_min, len(c.z)):
            if c.z[i] > top:
                break
            if c.z[i] <= level:
                i_r = i
        return min(c.lrs[i_r], c.lr_last / margin(momentum(s)))

    def climb_cap(fraction, m0, m9):
        return lambda c, s: min(c.right_end(c.floor(0.05)), c.climb(fraction) /
                                (m9 if momentum(s) > 0 else m0))

    def never_diverged_return(c, s):
        ref = c.lr_last
        if c.diverged_at < 0 and c.returned() is not None:
            ref = c.returned()
        return min(c.right_end(c.floor(0.05)), ref / margin(momentum(s)))

    def adam_no_amplification(c, s):
        m = 0.0 if family(s) == "adam" else momentum(s)
        return min(c.right_end(c.floor(0.05)), c.lr_last / margin(m))

    def scaled(factors):
        return lambda c, s: factors.get(family(s), 1.0) * core_rule(c, s)

    def centre(c, s):
        level = c.floor(0.05)
        return min(math.sqrt(c.left_end(level) * c.right_end(level)),
                   c.lr_last / margin(momentum(s)))

    return [
        ("core today: floor's right end (5% of D; x 1.2 without momentum), "
         "cap lr_last / margin, x sqrt(batch / 128) under Adam and AdamW",
         core_rule, None),
        ("core before the Adam batch scale (2026-12-07)", core_rule_unscaled,
         None),
        ("core until 2026-12-07: floor's right end, cap lr_last / "
         "clamp(1 / (1 - momentum), 3, 10)", core_rule_before, None),
        ("floor at 2% of D", floor_right(0.02), None),
        ("floor at 10% of D", floor_right(0.10), None),
        ("floor at 20% of D", floor_right(0.20), None),
        ("floor's centre (log), same cap", centre, None),
        ("floor relative to the noise: max(5% D, 1 sigma)", noise_floor(1), None),
        ("floor relative to the noise: max(5% D, 2 sigma)", noise_floor(2), None),
        ("floor's last point before z climbs 0.5 D (gaps allowed)", tolerant,
         None),
        ("cap from z's climb to 0.5 D: / 2 without momentum, / 6 with",
         climb_cap(0.5, 2, 6), None),
        ("cap from z's climb to 0.9 D: / 3 and / 10", climb_cap(0.9, 3, 10),
         None),
        ("never diverged: cap from where z came back to its start",
         never_diverged_return, None),
        ("Adam/AdamW: beta1 does not amplify the step (the margin without momentum, 2)",
         adam_no_amplification, None),
        ("Adam/AdamW x 0.8", scaled({"adam": 0.8}), None),
        ("Adam/AdamW x 1.2", scaled({"adam": 1.2}), None),
        ("without momentum (SGD, RMSprop) x 1.2",
         lambda c, s: (1.2 if momentum(s) == 0 else 1.0) *
         core_rule_before(c, s), None),
        ("without momentum: right end x 1.2, cap lr_last / 2",
         lambda c, s: core_rule(c, s) if momentum(s) > 0 else min(
             1.2 * c.right_end(c.floor(0.05)), c.lr_last / 2), None),
        ("median of the seeds' curves, then core's rule", core_rule,
         lambda cs, s, per: core_rule(median_curve(cs), s)),
        ("core before 2026-12-07's noise-widened smoothing: z over 0.1 "
         "decade whatever the noise", core_rule_fixed_span, None),
        ("zero-lag smoothing over 0.2 decade whatever the noise",
         lambda c, s: core_rule_unscaled(c.respan(2.0), s), None),
    ]


def family_scan(data):
    out = ["| family | factor on core's max_lr | choose rows | choose mean | "
           "holdout rows | holdout mean |", "|---|---|---|---|---|---|"]
    fams = {s["id"]: family(s) for s in data.settings}
    for fam in ("sgd", "sgdm", "adam", "rmsprop"):
        for k in (0.6, 0.8, 1.0, 1.2, 1.4):
            rows = evaluate(data, lambda c, s, k=k, fam=fam: core_rule(c, s) *
                            (k if family(s) == fam else 1.0))
            ch = [r["gap"] for r in rows if fams[r["id"]] == fam and
                  r["split"] == "choose"]
            ho = [r["gap"] for r in rows if fams[r["id"]] == fam and
                  r["split"] == "holdout"]
            out.append("| %s | %.1f | %d | %.2f | %d | %s |" % (
                fam, k, len(ch), statistics.mean(ch), len(ho),
                "%.2f" % statistics.mean(ho) if ho else "-"))
    return out


# --- 3. more freedom does not generalize: leave one setting out --------------


def rule_families():
    def cap_family(f, m0, m9):
        return lambda c, s: min(c.right_end(c.floor(f)), c.lr_last /
                                (m9 if momentum(s) > 0 else m0))

    def cap_ref_family(k, ref, m0, m9):
        return lambda c, s: min(k * c.right_end(c.floor(0.05)), (
            c.lr_last if ref == 1.0 else c.climb(ref)) / (
                m9 if momentum(s) > 0 else m0))

    def family_factors(ks):
        factors = dict(zip(("sgd", "sgdm", "adam", "rmsprop"), ks))
        return lambda c, s: factors[family(s)] * core_rule(c, s)

    return [
        ("floor level f and both margins (160 rules)",
         [cap_family(f, m0, m9) for f in (0.02, 0.05, 0.1, 0.2, 0.3)
          for m0 in (2, 3, 4, 5) for m9 in (4, 5, 6, 7, 8, 10, 12, 15)]),
        ("k x right end, cap from lr_last or z's climb, both margins "
         "(420 rules)",
         [cap_ref_family(k, ref, m0, m9) for k in (0.5, 0.7, 1, 1.4, 2)
          for ref in (1.0, 0.5, 0.2) for m0 in (1.5, 2, 3, 4)
          for m9 in (3, 4, 5, 6, 8, 10, 12)]),
        ("a factor per optimizer family (625 rules)",
         [family_factors(ks) for ks in
          itertools.product((0.5, 0.7, 1, 1.4, 2), repeat=4)]),
    ]


def leave_one_out(data):
    sid = {s["id"]: s for s in data.settings}
    choose = [s["id"] for s in data.settings if s["split"] == "choose"]
    holdout = [s["id"] for s in data.settings if s["split"] == "holdout"]
    out = ["| rule family | best on all choose rows: choose mean | "
           "leave-one-setting-out: choose mean / max | fitted on choose: "
           "holdout mean / max |", "|---|---|---|---|"]

    def gaps(rule, ids):
        g = []
        for i in ids:
            s = sid[i]
            lr = log_median([rule(c, s) for c in data.curves[i]])
            g.extend(data.gap(s, b, lr) for b in s["budgets"])
        return g

    core = gaps(core_rule, choose)
    core_ho = gaps(core_rule, holdout)
    out.append("| core today (no free parameter) | %.2f | %.2f / %.2f | "
               "%.2f / %.2f |" % (statistics.mean(core), statistics.mean(core),
                                  max(core), statistics.mean(core_ho),
                                  max(core_ho)))
    for name, rules in rule_families():
        table = {i: [statistics.mean(gaps(r, [i])) for r in rules]
                 for i in choose}
        total = np.array([table[i] for i in choose]).sum(axis=0)
        best = rules[int(np.argmin(total))]
        cv = []
        for i in choose:
            pick = rules[int(np.argmin(total - np.array(table[i])))]
            cv.extend(gaps(pick, [i]))
        ho = gaps(best, holdout)
        out.append("| %s | %.2f | %.2f / %.2f | %.2f / %.2f |" % (
            name, min(total) / len(choose), statistics.mean(cv), max(cv),
            statistics.mean(ho), max(ho)))
    return out


# --- 4. what the study can resolve ------------------------------------------


def seed_sd(data, s, b, lr, sched="one_cycle"):
    accs = [data.study.accuracy(s, sched, lr, 0.0, b, seed)
            for seed in s["job"]["range_test"]["seeds"]]
    return statistics.stdev(accs)


def noise_section(data):
    out = []
    # (a) a fresh 3-seed mean against the interpolated grid, near the best
    res = []
    for s in data.settings:
        a = data.study.advice[(s["id"], "lrtune", "one_cycle")]
        lr = a["max_lr"][0]
        for b in s["budgets"]:
            g = data.grids[(s["id"], b, "one_cycle")]
            if any(abs(math.log(lr / x)) < 1e-9 for x, _ in g):
                continue
            acc = data.study.mean_accuracy(s, "one_cycle", a["max_lr"], None, b)
            res.append(acc - interpolate(g, lr))
    sd = statistics.pstdev(res)
    out.append("- A fresh 3-seed mean at an LR between grid points differs "
               "from the grid's interpolation by sd %.2f points (mean %+.2f; "
               "the %d trained lrtune rows). If every row's trained gap were "
               "that noise alone (a rule with screen gap 0 everywhere), the "
               "largest of 48 rows would stay <= 0.5 with probability %.2f "
               "(Phi(0.5 / %.2f)^48)." % (
                   sd, statistics.mean(res), len(res),
                   (0.5 * (1 + math.erf(0.5 / sd / math.sqrt(2)))) ** 48, sd))
    # (b) the oracle's winner's curse, simulated per row
    rng = np.random.default_rng(13)
    rows = []
    for s in data.settings:
        for b in s["budgets"]:
            g = data.grids[(s["id"], b, "one_cycle")]
            truth = np.array([a for _, a in g])
            near = [lr for lr, a in g if a >= truth.max() - 1.0]
            se = math.sqrt(statistics.mean(seed_sd(data, s, b, lr) ** 2
                                           for lr in near)) / math.sqrt(3)
            rows.append((truth, se))
    sims = 4000
    means, maxes = [], []
    for _ in range(sims):
        gaps = np.array([
            (truth + rng.normal(0, se, len(truth))).max() -
            (truth.max() + rng.normal(0, se)) for truth, se in rows])
        means.append(gaps.mean())
        maxes.append(gaps.max())
    ses = [se for _, se in rows]
    out.append(
        "- The oracle is the best of 13 three-seed means. Simulating each row "
        "with its own seed noise (standard error of a 3-seed mean near the "
        "best: median %.2f, max %.2f points) and a rule that always trains "
        "at the row's best grid LR (a fresh run there): mean gap %.2f "
        "(5-95%%: %.2f..%.2f), largest gap over 48 rows %.2f (5-95%%: "
        "%.2f..%.2f), P(largest <= 0.5) = %.3f." % (
            statistics.median(ses), max(ses), np.median(means),
            *np.percentile(means, [5, 95]), np.median(maxes),
            *np.percentile(maxes, [5, 95]),
            float(np.mean(np.array(maxes) <= 0.5))))
    # (c) rows where core's rule already lands on the oracle's LR
    near = []
    for s in data.settings:
        for b in s["budgets"]:
            r = data.trained[(s["id"], b)]
            if abs(math.log10(r["lrtune_lr"] / r["oracle_lr"])) < 0.07:
                near.append("%s %d ep (%.3g vs %.3g): %.2f" % (
                    s["id"], b, r["lrtune_lr"], r["oracle_lr"],
                    r["lrtune_gap"]))
    out.append("- Trained rows where lrtune's max_lr is within 0.07 decade of "
               "the oracle's own LR: " + "; ".join(near) + ".")
    # (d) one LR per setting serves both budgets
    grid = np.exp(np.linspace(math.log(1e-6), math.log(30), 3001))
    floors = []
    for s in data.settings:
        gaps = np.array([[data.gap(s, b, lr) for lr in grid]
                         for b in s["budgets"]])
        j = int(np.argmin(gaps.max(axis=0)))
        floors.append((gaps[:, j].max(), s["id"], grid[j]))
    floors.sort(reverse=True)
    out.append(
        "- A range test does not know the budget, so one LR serves both "
        "budgets of a setting. The best such LR per setting (read off the "
        "grids) still leaves, at its worse budget: " + "; ".join(
            "%s %.2f (at %.3g)" % (i, g, lr) for g, i, lr in floors[:5]) +
        "; %d of 24 settings over 0.2." % sum(g > 0.2 for g, _, _ in floors))
    # (e) the best classic rule is the best of four noisy runs
    beat = [(k, v) for k, v in data.classic_best.items() if v <= 0.0]
    out.append(
        "- The lag is measured against the best of four classic rules, each "
        "trained with its own noise: in %d of 48 rows that best classic run "
        "is at or above the oracle (gap <= 0: %s), so a lag <= 0.3 there "
        "asks lrtune's own fresh run to land within 0.3 of the oracle." % (
            len(beat), ", ".join("%s %d ep %.2f" % (k[0], k[1], v)
                                 for k, v in sorted(beat))))
    return out


def adam_batch(data):
    out = ["| setting | oracle LR (1 / 3 epochs) | floor's right end | "
           "lr_last | core max_lr |", "|---|---|---|---|---|"]
    for i in ("mlp-fmnist-adam-b32", "mlp-fmnist-adam-b128",
              "mlp-fmnist-adam-b512", "mlp-fmnist-sgdm-b32",
              "mlp-fmnist-sgdm-b128", "mlp-fmnist-sgdm-b512"):
        s = next(x for x in data.settings if x["id"] == i)
        cs = data.curves[i]
        orc = [max(data.grids[(i, b, "one_cycle")], key=lambda t: t[1])[0]
               for b in s["budgets"]]
        out.append("| %s | %s | %.3g | %.3g | %.3g |" % (
            i, " / ".join("%.3g" % x for x in orc),
            log_median([c.right_end(c.floor(0.05)) for c in cs]),
            log_median([c.lr_last for c in cs]),
            log_median([core_rule(c, s) for c in cs])))
    return out


def clr_section(data):
    # lrtune's CLR trained at (max_lr, max_lr / 10) against the grid's
    # (max_lr, max_lr / 4) read at the same max_lr
    ratio10, diffs, rows = 0, [], []
    for s in data.settings:
        a = data.study.advice.get((s["id"], "lrtune", "triangular"))
        if a is None:
            continue
        ratio10 += sum(abs(x / y - 10) < 1e-6 for x, y in
                       zip(a["detail"]["per_seed_max_lr"],
                           a["detail"]["per_seed_min_lr"]))
        for b in s["budgets"]:
            r = data.trained[(s["id"], b)]
            g = data.grids[(s["id"], b, "triangular")]
            quarter = max(x for _, x in g) - interpolate(g, a["max_lr"][0])
            diffs.append(quarter - r["clr_gap"])
            rows.append((r["clr_gap"], s["id"], b, quarter))
    rows.sort(reverse=True)
    return [
        "- min_lr is max_lr / 10 on %d of %d seed curves: the first clear "
        "drop (10%% of D) always lies more than a decade below max_lr, so "
        "the [3, 10] ratio clamp sets it." % (ratio10, 3 * len(
            [s for s in data.settings if s.get("clr", True)])),
        "- Training (max_lr, max_lr / 10) against (max_lr, max_lr / 4) read "
        "off the CLR grid at the same max_lr: the ratio 10 is ahead by %.2f "
        "points on average over %d rows (sd %.2f), behind in %d." % (
            statistics.mean(diffs), len(diffs), statistics.pstdev(diffs),
            sum(d < 0 for d in diffs)),
        "- Largest CLR gaps: " + "; ".join(
            "%s %d ep %.2f (max_lr / 4 would read %.2f)" % (i, b, g, q)
            for g, i, b, q in rows[:4]) + "."]


def interval_section(data):
    inside = meets = n = 0
    grid = np.exp(np.linspace(math.log(1e-6), math.log(30), 3001))
    for s in data.settings:
        per = data.study.advice[(s["id"], "lrtune", "one_cycle")]["detail"][
            "per_seed_max_lr"]
        lo, hi = min(per), max(per)
        for b in s["budgets"]:
            n += 1
            best = max(data.grids[(s["id"], b, "one_cycle")],
                       key=lambda t: t[1])[0]
            inside += lo <= best <= hi
            ok = grid[np.array([data.gap(s, b, lr) for lr in grid]) <= 0.3]
            meets += not (hi < ok.min() or lo > ok.max())
    return ["- The seeds' interval [max_lr_low, max_lr_high] holds the "
            "oracle's grid LR in %d of %d rows and meets the LRs within 0.3 "
            "point of the oracle in %d: it measures how much the seeds "
            "disagree, not where the best LR is." % (inside, n, meets)]


def spread_section(data):
    dev, sig = [], []
    for s in data.settings:
        cs = data.curves[s["id"]]
        v = [core_rule(c, s) for c in cs]
        for k, c in enumerate(cs):
            others = [v[j] for j in range(len(v)) if j != k]
            dev.append(abs(math.log10(v[k] / math.sqrt(others[0] * others[1]))))
            sig.append(c.noise / c.depth)
    dev, sig = np.array(dev), np.array(sig)
    lines = ["- One seed's max_lr against the other two seeds' (geometric "
             "mean): median %.2f decade, over 0.3 on %d of %d curves." % (
                 np.median(dev), int((dev > 0.3).sum()), len(dev))]
    for t in (0.02, 0.03, 0.04):
        hi = dev[sig >= t]
        lines.append(
            "- Curves with per-step noise >= %.2f D: %d, %d of them over 0.3; "
            "below: %d, %d over 0.3." % (t, len(hi), int((hi > 0.3).sum()),
                                         int((sig < t).sum()),
                                         int((dev[sig < t] > 0.3).sum())))
    return lines


# --- 5. training what passed, and the oracle again -------------------------

ORACLE_AGAIN = "oracle_again"
FRESH_SEEDS = [3, 4, 5]


def passes(rows, core):
    """Better than core on the choose rows, no worse on the holdout rows."""
    mean = lambda r, split: statistics.mean(x["gap"] for x in r
                                            if x["split"] == split)
    return (mean(rows, "choose") < mean(core, "choose") and
            mean(rows, "holdout") <= mean(core, "holdout"))


def write_candidates(data, path):
    """candidates.jsonl for quality_study --stage candidates: every rule that
    passes the screen at its aggregate LR (all seeds, as lrtune trains), and
    each setting's oracle LRs at fresh seeds."""
    core = evaluate(data, core_rule)
    lines = []
    for name, per_seed, agg in candidates()[1:]:
        rows = evaluate(data, per_seed, agg)
        if not passes(rows, core):
            continue
        for s in data.settings:
            lr = next(r["lr"] for r in rows if r["id"] == s["id"])
            lines.append({"setting": s["id"], "rule": name, "max_lr": [lr] * 3})
    for s in data.settings:
        best = sorted({max(data.grids[(s["id"], b, "one_cycle")],
                           key=lambda t: t[1])[0] for b in s["budgets"]})
        for lr in best:
            lines.append({"setting": s["id"], "rule": ORACLE_AGAIN,
                          "max_lr": [lr] * 3, "seeds": FRESH_SEEDS})
    with open(path, "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    return len(lines)


def trained_section(data, path):
    """Trained gaps of the candidates that have runs (None if none do)."""
    if not os.path.exists(path):
        return None
    by_rule = {"core today (results.md)": None}
    for line in report.read_lines(path):
        by_rule.setdefault(line["rule"], []).append(line)
    sid = {s["id"]: s for s in data.settings}
    out = ["| trained | split | rows | mean gap | max gap | rows over 0.5 | "
           "lag max | rows lag over 0.3 |", "|---|---|---|---|---|---|---|---|"]
    fresh = []
    for rule, lines in by_rule.items():
        rows = []
        if lines is None:  # the study's own lrtune column
            for (i, b), r in data.trained.items():
                if r.get("lrtune_gap") is not None:
                    rows.append((r["split"], r["lrtune_gap"], r["lrtune_gap"] -
                                 data.classic_best[(i, b)]))
        for line in lines or []:
            s = sid[line["setting"]]
            seeds = line.get("seeds", s["job"]["range_test"]["seeds"])
            for b in s["budgets"]:
                oracle = max(data.grids[(s["id"], b, "one_cycle")],
                             key=lambda t: t[1])
                if rule == ORACLE_AGAIN and abs(line["max_lr"][0] /
                                                oracle[0] - 1) > 1e-9:
                    continue
                accs = [data.study.accuracy(s, "one_cycle", lr, 0.0, b, seed)
                        for lr, seed in zip(line["max_lr"], seeds)]
                if None in accs:
                    continue
                gap = oracle[1] - statistics.mean(accs)
                rows.append((s["split"], gap,
                             gap - data.classic_best[(s["id"], b)]))
                if rule == ORACLE_AGAIN:
                    fresh.append("%s %d ep %.2f" % (s["id"], b, gap))
        if not rows:
            continue
        for split in ("choose", "holdout", "all"):
            r = [x for x in rows if split in ("all", x[0])]
            g = [x[1] for x in r]
            out.append("| %s | %s | %d | %.2f | %.2f | %d | %.2f | %d |" % (
                rule, split, len(r), statistics.mean(g), max(g),
                sum(x > GAP_GOAL for x in g), max(x[2] for x in r),
                sum(x[2] > LAG_GOAL for x in r)))
    if fresh:
        out.append("\nThe oracle's own LR trained again at seeds %s, gap to "
                   "the oracle by row: %s." % (
                       ", ".join(map(str, FRESH_SEEDS)), "; ".join(fresh)))
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    build = args[0] if args else None
    data = Data()
    path = os.path.join(HERE, "results", "candidates.jsonl")
    if "--write-candidates" in sys.argv:
        n = write_candidates(data, path)
        print("rule_screen: %d lines in %s" % (n, path), file=sys.stderr)
        return
    print("# Screening max_lr rules on the recorded curves\n")
    print("`/usr/bin/python3 bench/quality/rule_screen.py build` (the "
          "study's recorded curves and oracle grids; LRs read off the grid, "
          "interpolated in log LR, not trained). Gaps in accuracy points "
          "below the oracle; lag: the screened gap minus the best classic "
          "rule's trained gap; spread: the seeds' max_lr range in decades.\n")
    print("## 1. The restatement is core's rule\n")
    for line in check_parity(data, build):
        print("- " + line)
    print("\n## 2. Candidates (choose, then holdout)\n")
    print(SUMMARY_HEAD)
    for name, per_seed, agg in candidates():
        print(summary_line(name, evaluate(data, per_seed, agg)))
    print("\n### Where max_lr sits for each optimizer family\n")
    print("\n".join(family_scan(data)))
    print("\n## 3. More freedom, fitted on the choose rows\n")
    print("\n".join(leave_one_out(data)))
    print("\n## 4. What the study can resolve\n")
    print("\n".join(noise_section(data)))
    print("\n### Adam's best LR moves with the batch size; the curve "
          "barely does\n")
    print("\n".join(adam_batch(data)))
    print("\n### The CLR bounds\n")
    print("\n".join(clr_section(data)))
    print("\n### The interval and the spread\n")
    print("\n".join(interval_section(data) + spread_section(data)))
    trained = trained_section(data, path)
    if trained:
        print("\n## 5. Trained: the rules that passed the screen, and the "
              "oracle again\n")
        print("`--write-candidates` lists every rule that beats core on the "
              "choose rows without losing on the holdout rows (the screen); "
              "`STAGES=candidates bash bench/quality/run.sh` trains them, all "
              "seeds at the aggregate LR as lrtune trains, and the oracle's "
              "own grid LR at fresh seeds. The core row is the study's "
              "trained table (results.md). These candidates were trained on "
              "2026-12-06 against the core of that day (\"core until "
              "2026-12-07\" above); \"without momentum: right end x 1.2, cap "
              "lr_last / 2\" became core's rule on 2026-12-07 (docs/"
              "analysis.md section 4), so its rows and core's now agree. "
              "\"core until 2026-12-07\" and \"Adam/AdamW: beta1 does not "
              "amplify the step\" were trained later that day on both "
              "replicates of the study for the six-seed comparison "
              "(pooled_screen.py, pooled_screen.md).\n")
        print("\n".join(trained))


if __name__ == "__main__":
    main()
