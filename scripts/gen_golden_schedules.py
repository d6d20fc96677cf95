#!/usr/bin/python3
"""Generates tests/golden/schedules.json: PyTorch's LR (and momentum) values.

Run with Debian's python3-torch (the oracle; 1.13 on Debian 12):

    /usr/bin/python3 scripts/gen_golden_schedules.py > tests/golden/schedules.json

Each case names lrtune's schedule parameters (the names of `lrtune schedule`
flags and core/schedule_params.h) and the PyTorch scheduler that defines the
same schedule. Value t is what the optimizer holds after t calls of
scheduler.step(), i.e. the LR in force during step t. core/schedule_test.cc
compares lrtune's values to these at every step (relative error <= 1e-9).
"""
import json
import math
import sys
import warnings

import torch
from torch.optim import lr_scheduler as S

warnings.filterwarnings("ignore")


def optimizer(lr, momentum=0.9):
    p = torch.nn.Parameter(torch.zeros(1))
    return torch.optim.SGD([p], lr=lr, momentum=momentum)


def case(name, params, steps, make, base_lr=0.1):
    """make(opt) builds the PyTorch scheduler on an SGD optimizer."""
    opt = optimizer(base_lr)
    sched = make(opt)
    lrs, moms = [], []
    for _ in range(steps):
        g = opt.param_groups[0]
        lrs.append(g["lr"])
        moms.append(g["momentum"])
        opt.step()
        sched.step()
    cycles = params.get("kind") in ("triangular", "triangular2", "exp_range",
                                    "one_cycle") and \
        params.get("cycle_momentum", "true") == "true"
    params = dict(params)
    params.setdefault("base_lr", repr(base_lr))
    return {"name": name, "params": params, "steps": steps, "lr": lrs,
            "momentum": moms if cycles else None}


def sequential(children, milestones):
    def make(opt):
        return S.SequentialLR(opt, [c(opt) for c in children], milestones)
    return make


def wsd_lambda(total, cooldown, shape, min_ratio=0.0):
    """transformers' get_wsd_schedule after its warm-up: 1 while stable,
    then (1 - min_ratio) f(progress) + min_ratio over the last `cooldown`
    steps."""
    start = total - cooldown

    def factor(step):
        if step < start:
            return 1.0
        progress = (step - start) / max(1, cooldown)
        if shape == "linear":
            value = 1.0 - progress
        elif shape == "cosine":
            value = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:  # 1-sqrt
            value = 1.0 - math.sqrt(progress)
        return (1.0 - min_ratio) * value + min_ratio
    return factor


def fractal_order(n):
    """Agarwal, Goel and Zhang's fractal permutation of 1..n (n a power of
    2): sigma_1 = [1], sigma_2n = interleave(sigma_n, 2n + 1 - sigma_n)."""
    sigma = [1]
    while len(sigma) < n:
        m = 2 * len(sigma)
        sigma = [v for x in sigma for v in (x, m + 1 - x)]
    return sigma


def fractal_lambda(n, kappa):
    """base_lr / g: g the Chebyshev nodes on [1/kappa, 1] in fractal order,
    repeated every n steps."""
    order = fractal_order(n)
    lo = 1.0 / kappa
    nodes = [(1 + lo) / 2 - (1 - lo) / 2 *
             math.cos((2 * i - 1) * math.pi / (2 * n)) for i in range(1, n + 1)]

    def factor(step):
        return 1.0 / nodes[order[step % n] - 1]
    return factor


def decay_shape(shape, z, beta):
    """A profile's decay f(z): 1 at z = 0 (docs/schedules.md)."""
    if shape == "linear":
        return 1.0 - z
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * z))
    if shape == "exp":  # e^(-4z), rescaled to end at 0
        return (math.exp(-4.0 * z) - math.exp(-4.0)) / (1.0 - math.exp(-4.0))
    left = 1.0 - z  # rex
    return left / ((1.0 - beta) + beta * left)


def profile_lambda(shape, mode, t0, t_mult=1, base=0.1, eta_min=0.0,
                   beta=0.5, sample_every=1):
    """The profile kind as a LambdaLR factor: periods t0, t0 t_mult, ...;
    decay f(z), growth f(1 - z), cyclic a growth then a decay half-cycle."""
    halves = 2 if mode == "cyclic" else 1

    def factor(step):
        t = step - step % sample_every
        t_cur, period = t, t0 * halves
        while t_cur >= period:
            t_cur -= period
            period *= t_mult
        half = period // halves
        if mode == "decay":
            value = decay_shape(shape, t_cur / half, beta)
        elif mode == "growth" or t_cur < half:
            value = decay_shape(shape, 1.0 - t_cur / half, beta)
        else:
            value = decay_shape(shape, (t_cur - half) / half, beta)
        return (eta_min + (base - eta_min) * value) / base
    return factor


def profile_cases():
    """Decay and growth profiles of every shape, cyclic and restarting
    variants, held samples, and the shaped warm-ups."""
    out = []
    for shape, beta in [("linear", 0.5), ("cosine", 0.5), ("exp", 0.5),
                        ("rex", 0.5), ("rex", 0.9)]:
        for mode, t0, t_mult, steps in [("decay", 20, 1, 50),
                                        ("growth", 16, 1, 40),
                                        ("cyclic", 10, 2, 70)]:
            params = {"kind": "profile", "profile": shape,
                      "profile_mode": mode, "t0": str(t0),
                      "t_mult": str(t_mult), "eta_min": "0.01",
                      "rex_beta": repr(beta)}
            out.append(case(
                "profile_%s_b%g_%s" % (shape, beta, mode), params, steps,
                lambda o, shape=shape, mode=mode, t0=t0, t_mult=t_mult,
                beta=beta: S.LambdaLR(o, profile_lambda(
                    shape, mode, t0, t_mult, eta_min=0.01, beta=beta))))
    out.append(case(
        "profile_exp_decay_tmult3_held",
        {"kind": "profile", "profile": "exp", "t0": "4", "t_mult": "3",
         "sample_every": "3"}, 60,
        lambda o: S.LambdaLR(o, profile_lambda("exp", "decay", 4, 3,
                                               sample_every=3))))
    for beta, eta_min in [(0.5, 0.0), (0.9, 0.02)]:
        out.append(case(
            "rex_b%g" % beta,
            {"kind": "rex", "total_steps": "60", "rex_beta": repr(beta),
             "eta_min": repr(eta_min)}, 60,
            lambda o, beta=beta, eta_min=eta_min: S.LambdaLR(o, profile_lambda(
                "rex", "decay", 60, eta_min=eta_min, beta=beta))))
    for shape in ["cosine", "exp", "rex"]:
        out.append(case(
            "warmup_%s_cosine" % shape,
            {"kind": "cosine", "t_max": "24", "warmup_steps": "8",
             "warmup_start_factor": "0.05", "warmup_shape": shape}, 32,
            sequential([lambda o, shape=shape: S.LambdaLR(o, profile_lambda(
                shape, "growth", 8, eta_min=0.005)),
                lambda o: S.CosineAnnealingLR(o, T_max=24)], [8])))
    return out


def cases():
    out = []
    add = out.append
    add(case("constant", {"kind": "constant"}, 20,
             lambda o: S.ConstantLR(o, factor=1.0, total_iters=0)))
    for s, g in [(1, 0.5), (3, 0.1), (7, 0.9)]:
        add(case(f"step_s{s}_g{g}", {"kind": "step", "step_size": str(s),
                                     "gamma": repr(g)}, 40,
                 lambda o, s=s, g=g: S.StepLR(o, step_size=s, gamma=g)))
    for ms, g in [([5, 10, 20], 0.1), ([3, 8, 8, 15], 0.5), ([0, 4], 0.3)]:
        add(case(f"multistep_{'_'.join(map(str, ms))}",
                 {"kind": "multistep", "milestones": ",".join(map(str, ms)),
                  "gamma": repr(g)}, 30,
                 lambda o, ms=ms, g=g: S.MultiStepLR(o, ms, gamma=g)))
    for g in [0.9, 0.99, 1.05]:
        add(case(f"exponential_{g}", {"kind": "exponential", "gamma": repr(g)},
                 60, lambda o, g=g: S.ExponentialLR(o, gamma=g)))
    for a, b, n in [(1 / 3, 1.0, 5), (0.1, 1.0, 17), (1.0, 0.05, 30),
                    (0.5, 0.0, 10)]:
        add(case(f"linear_{a:.3f}_{b}_{n}",
                 {"kind": "linear", "start_factor": repr(a),
                  "end_factor": repr(b), "total_iters": str(n)}, 40,
                 lambda o, a=a, b=b, n=n: S.LinearLR(
                     o, start_factor=a, end_factor=b, total_iters=n)))
    for n, p in [(10, 1.0), (25, 2.0), (40, 0.5)]:
        add(case(f"polynomial_{n}_{p}",
                 {"kind": "polynomial", "total_iters": str(n),
                  "power": repr(p)}, 50,
                 lambda o, n=n, p=p: S.PolynomialLR(o, total_iters=n, power=p)))
    for tm, em in [(10, 0.0), (37, 0.001), (1, 0.01)]:
        add(case(f"cosine_{tm}_{em}",
                 {"kind": "cosine", "t_max": str(tm), "eta_min": repr(em)},
                 80, lambda o, tm=tm, em=em: S.CosineAnnealingLR(
                     o, T_max=tm, eta_min=em)))
    for t0, mult, em in [(10, 1, 0.0), (5, 2, 0.001), (3, 3, 0.0),
                         (1, 1, 0.0), (7, 1, 0.01)]:
        add(case(f"sgdr_{t0}_{mult}_{em}",
                 {"kind": "sgdr", "t0": str(t0), "t_mult": str(mult),
                  "eta_min": repr(em)}, 120,
                 lambda o, t0=t0, m=mult, em=em: S.CosineAnnealingWarmRestarts(
                     o, T_0=t0, T_mult=m, eta_min=em)))
    cyclic = [
        ("triangular", 0.001, 0.1, 10, None, 1.0, True),
        ("triangular", 0.01, 0.5, 1, None, 1.0, True),
        ("triangular", 0.001, 0.1, 4, 12, 1.0, True),
        ("triangular2", 0.001, 0.1, 5, None, 1.0, True),
        ("triangular2", 0.002, 0.02, 3, 7, 1.0, False),
        ("exp_range", 0.001, 0.1, 8, None, 0.99, True),
        ("exp_range", 0.001, 0.1, 6, 3, 0.95, True),
        ("exp_range", 0.001, 0.1, 5, None, 1.0, True),
    ]
    for mode, lo, hi, up, down, g, cm in cyclic:
        params = {"kind": mode, "max_lr": repr(hi), "step_size_up": str(up),
                  "cycle_momentum": "true" if cm else "false"}
        if down is not None:
            params["step_size_down"] = str(down)
        if mode == "exp_range":
            params["gamma"] = repr(g)
        add(case(f"cyclic_{mode}_{up}_{down}_{g}_{cm}", params, 100,
                 lambda o, mode=mode, lo=lo, hi=hi, up=up, down=down, g=g,
                 cm=cm: S.CyclicLR(o, base_lr=lo, max_lr=hi, step_size_up=up,
                                   step_size_down=down, mode=mode, gamma=g,
                                   cycle_momentum=cm),
                 base_lr=lo))
    one = [
        (0.1, 100, 0.3, "cos", 25.0, 1e4, False),
        (0.1, 100, 0.3, "linear", 25.0, 1e4, False),
        (1.0, 77, 0.25, "cos", 10.0, 100.0, True),
        (0.5, 50, 0.4, "linear", 5.0, 1e3, True),
        (0.05, 1000, 0.1, "cos", 25.0, 1e4, False),
        (0.1, 10, 0.5, "cos", 25.0, 1e4, False),
    ]
    for mx, total, pct, anneal, div, fdiv, three in one:
        params = {"kind": "one_cycle", "max_lr": repr(mx),
                  "total_steps": str(total), "pct_start": repr(pct),
                  "anneal": anneal, "div_factor": repr(div),
                  "final_div_factor": repr(fdiv),
                  "three_phase": "true" if three else "false"}
        add(case(f"one_cycle_{mx}_{total}_{pct}_{anneal}_{three}", params,
                 total,
                 lambda o, mx=mx, total=total, pct=pct, anneal=anneal,
                 div=div, fdiv=fdiv, three=three: S.OneCycleLR(
                     o, max_lr=mx, total_steps=total, pct_start=pct,
                     anneal_strategy=anneal, div_factor=div,
                     final_div_factor=fdiv, three_phase=three)))
    # Warmup: LinearLR then another schedule, through SequentialLR.
    add(case("warmup_linear_cosine",
             {"kind": "sequential", "warmup_steps": "5",
              "warmup_start_factor": "0.1",
              "then": json.dumps({"kind": "cosine", "t_max": "40"})}, 45,
             sequential([lambda o: S.LinearLR(o, start_factor=0.1,
                                              total_iters=5),
                         lambda o: S.CosineAnnealingLR(o, T_max=40)], [5])))
    add(case("warmup_linear_exponential",
             {"kind": "sequential", "warmup_steps": "8",
              "warmup_start_factor": "0.25",
              "then": json.dumps({"kind": "exponential", "gamma": "0.95"})},
             40,
             sequential([lambda o: S.LinearLR(o, start_factor=0.25,
                                              total_iters=8),
                         lambda o: S.ExponentialLR(o, gamma=0.95)], [8])))
    add(case("warmup_linear_step",
             {"kind": "sequential", "warmup_steps": "3",
              "warmup_start_factor": "0.5",
              "then": json.dumps({"kind": "step", "step_size": "4",
                                  "gamma": "0.5"})}, 30,
             sequential([lambda o: S.LinearLR(o, start_factor=0.5,
                                              total_iters=3),
                         lambda o: S.StepLR(o, step_size=4, gamma=0.5)], [3])))
    # WSD (Hägele et al. 2024) as LambdaLR, the cooldown's length from a
    # fraction rounded half up.
    add(case("wsd_1sqrt_fraction", {"kind": "wsd", "total_steps": "50"}, 50,
             lambda o: S.LambdaLR(o, wsd_lambda(50, 10, "1-sqrt"))))
    add(case("wsd_linear_steps_floor",
             {"kind": "wsd", "total_steps": "40", "cooldown_steps": "15",
              "cooldown": "linear", "eta_min": "0.01"}, 40,
             lambda o: S.LambdaLR(o, wsd_lambda(40, 15, "linear", 0.1))))
    add(case("wsd_cosine_fraction",
             {"kind": "wsd", "total_steps": "64", "cooldown_fraction": "0.3",
              "cooldown": "cosine"}, 64,
             lambda o: S.LambdaLR(o, wsd_lambda(
                 64, int(math.floor(0.3 * 64 + 0.5)), "cosine"))))
    add(case("wsd_all_cooldown",
             {"kind": "wsd", "total_steps": "12", "cooldown_fraction": "1"},
             12, lambda o: S.LambdaLR(o, wsd_lambda(12, 12, "1-sqrt"))))
    # A warm-up given as a parameter of the schedule itself (any kind).
    add(case("cosine_with_warmup_param",
             {"kind": "cosine", "t_max": "30", "eta_min": "0.001",
              "warmup_steps": "6", "warmup_start_factor": "0.2"}, 36,
             sequential([lambda o: S.LinearLR(o, start_factor=0.2,
                                              total_iters=6),
                         lambda o: S.CosineAnnealingLR(o, T_max=30,
                                                       eta_min=0.001)], [6])))
    # Fractal Chebyshev steps (experimental), as LambdaLR.
    for n, kappa, steps in [(1, 10.0, 4), (8, 10.0, 24), (16, 100.0, 40)]:
        add(case("fractal_n%d_kappa%g" % (n, kappa),
                 {"kind": "fractal", "fractal_period": str(n),
                  "fractal_kappa": repr(kappa)}, steps,
                 lambda o, n=n, kappa=kappa: S.LambdaLR(
                     o, fractal_lambda(n, kappa)), base_lr=0.01))
    add(case("warmup_linear_wsd",
             {"kind": "sequential", "warmup_steps": "5",
              "warmup_start_factor": "0.1",
              "then": json.dumps({"kind": "wsd", "total_steps": "45",
                                  "cooldown_steps": "9"})}, 50,
             sequential([lambda o: S.LinearLR(o, start_factor=0.1,
                                              total_iters=5),
                         lambda o: S.LambdaLR(o, wsd_lambda(45, 9, "1-sqrt"))],
                        [5])))
    out.extend(profile_cases())
    return out


def main():
    doc = {"generator": "scripts/gen_golden_schedules.py",
           "torch": torch.__version__, "cases": cases()}
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
