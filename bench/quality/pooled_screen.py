#!/usr/bin/python3
"""rule_screen.py's candidates, screened on both replicates of the study.

    /usr/bin/python3 bench/quality/pooled_screen.py \
        > bench/quality/pooled_screen.md
    /usr/bin/python3 bench/quality/pooled_screen.py --write-candidates \
        "RULE NAME" ...     # then the candidates stage on each replicate

`--write-candidates` appends the named rules' aggregate LRs (all seeds at
it, as lrtune trains) to each replicate's candidates.jsonl; quality_study's
`candidates` stage trains them, and the "trained" table scores every rule
with runs in both replicates as pooled.py scores core's.

Each rule reads each replicate's own curves (results/ at seeds 0, 1, 2 and
results-seeds345/ at seeds 3, 4, 5, bench/quality/replicate.sh); the LR it
gives is scored on the pooled six-seed oracle grid, interpolated in log LR,
and a row's gap is the mean over the two replicates, as pooled.py scores
trained runs. Spread: the seeds' max_lr range of each replicate's range test.
The first line is core's rule, and the trained pooled table (pooled.py) beside
it says how far a screened gap is from a trained one. Needs numpy.
"""
import json
import math
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import report  # noqa: E402
import rule_screen as rs  # noqa: E402
import pooled  # noqa: E402


class Replicate:
    def __init__(self, settings_path, results):
        self.results = results
        self.study = report.Study(settings_path, results)
        raw = {c["setting"]: c for c in
               report.read_lines(os.path.join(results, "curves-*.jsonl"))}
        self.curves = {
            s["id"]: [rs.Curve(sd["lr"], [math.nan if x is None else x
                                          for x in sd["loss"]])
                      for sd in raw[s["id"]]["seeds"]]
            for s in self.study.settings if s["id"] in raw}


def load():
    a = Replicate(os.path.join(HERE, "settings.json"),
                  os.path.join(HERE, "results"))
    b_dir = os.path.join(HERE, "results-seeds345")
    b = Replicate(os.path.join(b_dir, "settings.json"), b_dir)
    b.by_id = {s["id"]: s for s in b.study.settings}
    grids = {}
    for s in a.study.settings:
        for epochs in s["budgets"]:
            ga = a.study.grid(s, "one_cycle", epochs)
            gb = b.study.grid(b.by_id[s["id"]], "one_cycle", epochs)
            if ga and gb:
                grids[(s["id"], epochs)] = pooled.pool(ga, gb)
    return a, b, grids


def evaluate(a, b, grids, per_seed):
    rows = []
    for s in a.study.settings:
        if s["id"] not in a.curves or s["id"] not in b.curves:
            continue
        lrs, spreads = [], []
        for rep in (a, b):
            per = [per_seed(c, s) for c in rep.curves[s["id"]]]
            lrs.append(rs.log_median(per))
            spreads.append(math.log10(max(per) / min(per)))
        for epochs in s["budgets"]:
            g = grids.get((s["id"], epochs))
            if g is None:
                continue
            best = max(acc for _, acc in g)
            gap = best - statistics.mean(rs.interpolate(g, lr) for lr in lrs)
            rows.append({"split": s["split"], "gap": gap, "spread": spreads})
    return rows


def write_candidates(a, b, names):
    rules = {name: per_seed for name, per_seed, agg in rs.candidates()
             if agg is None}
    missing = [n for n in names if n not in rules]
    if missing:
        sys.exit("pooled_screen: no candidate named %r; the names are:\n  %s"
                 % (missing[0], "\n  ".join(rules)))
    for rep in (a, b):
        path = os.path.join(rep.results, "candidates.jsonl")
        have = {(c["setting"], c["rule"]) for c in report.read_lines(path)}
        with open(path, "a") as f:
            for name in names:
                for s in rep.study.settings:
                    if (s["id"], name) in have or s["id"] not in rep.curves:
                        continue
                    lr = rs.log_median([rules[name](c, s)
                                        for c in rep.curves[s["id"]]])
                    f.write(json.dumps({"setting": s["id"], "rule": name,
                                        "max_lr": [lr] * 3}) + "\n")


def trained(a, b, grids):
    """Pooled trained gaps: core's (advice.jsonl) and every rule with
    candidate lines in both replicates."""
    def lines(rep):
        out = {"core today (advice.jsonl)": {}}
        for c in report.read_lines(os.path.join(rep.results,
                                                "candidates.jsonl")):
            if c["rule"] != rs.ORACLE_AGAIN and "seeds" not in c:
                out.setdefault(c["rule"], {})[c["setting"]] = c["max_lr"]
        for (sid, rule, sched), adv in rep.study.advice.items():
            if rule == "lrtune" and sched == "one_cycle":
                out["core today (advice.jsonl)"][sid] = adv["max_lr"]
        return out
    la, lb = lines(a), lines(b)
    out = ["| trained | split | rows | mean gap | max gap | rows over 0.5 |",
           "|---|---|---|---|---|---|"]
    for rule in la:
        if rule not in lb:
            continue
        rows = []
        for s in a.study.settings:
            sb = b.by_id[s["id"]]
            for epochs in s["budgets"]:
                g = grids.get((s["id"], epochs))
                ma, mb = la[rule].get(s["id"]), lb[rule].get(s["id"])
                if g is None or ma is None or mb is None:
                    continue
                acc_a = a.study.mean_accuracy(s, "one_cycle", ma, None, epochs)
                acc_b = b.study.mean_accuracy(sb, "one_cycle", mb, None, epochs)
                if acc_a is None or acc_b is None:
                    continue
                best = max(acc for _, acc in g)
                rows.append((s["split"], best - (acc_a + acc_b) / 2))
        for split in ("choose", "holdout", "all"):
            g = [x[1] for x in rows if split in ("all", x[0])]
            if g:
                out.append("| %s | %s | %d | %.2f | %.2f | %d |" % (
                    rule, split, len(g), statistics.mean(g), max(g),
                    sum(x > 0.5 for x in g)))
    return out


def cap_section(a, b):
    """How often core's divergence cap, not the floor, sets a seed's max_lr,
    and how far the divergence LR moves between a range test's seeds."""
    out = ["| family | seed curves | cap sets max_lr | divergence LR spread "
           "across a test's seeds, median / max (decades) |",
           "|---|---|---|---|"]
    for fam in ("sgd", "sgdm", "adam", "rmsprop"):
        curves = capped = 0
        spreads = []
        for rep in (a, b):
            for s in rep.study.settings:
                if rs.family(s) != fam or s["id"] not in rep.curves:
                    continue
                lasts = []
                for c in rep.curves[s["id"]]:
                    curves += 1
                    capped += (rs.core_rule_unscaled(c, s) <
                               rs.core_floor(c, s))
                    lasts.append(c.lr_last)
                spreads.append(math.log10(max(lasts) / min(lasts)))
        if curves:
            out.append("| %s | %d | %d | %.2f / %.2f |" % (
                fam, curves, capped, statistics.median(spreads), max(spreads)))
    return out


def cells(rows):
    g = [r["gap"] for r in rows]
    sp = [x for r in rows for x in r["spread"]]
    return "%.2f | %.2f | %d | %.2f" % (statistics.mean(g), max(g),
                                        sum(x > 0.5 for x in g), max(sp))


def main():
    a, b, grids = load()
    if len(sys.argv) > 1 and sys.argv[1] == "--write-candidates":
        write_candidates(a, b, sys.argv[2:])
        return
    print("# max_lr rules screened on both replicates\n")
    print("`/usr/bin/python3 bench/quality/pooled_screen.py`: rule_screen.py's "
          "candidates on each replicate's curves, scored on the pooled "
          "six-seed oracle grid (%d rows with both replicates complete). "
          "Gaps in points below the pooled oracle; spread in decades (both "
          "replicates' range tests).\n" % len(grids))
    print("| rule | choose mean | max | >0.5 | spread | holdout mean | max "
          "| >0.5 | spread |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, per_seed, agg in rs.candidates():
        if agg is not None:
            continue  # rules on the seeds' median curve: not restated here
        rows = evaluate(a, b, grids, per_seed)
        print("| %s | %s | %s |" % (
            name, cells([r for r in rows if r["split"] == "choose"]),
            cells([r for r in rows if r["split"] == "holdout"])))
    print("\n## Where the divergence cap sets max_lr\n")
    print("\n".join(cap_section(a, b)))
    print("\n## Trained, both replicates pooled\n")
    print("\n".join(trained(a, b, grids)))


if __name__ == "__main__":
    main()
