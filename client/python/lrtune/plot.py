"""rt.plot(): a range test's curve and its recommendation with matplotlib,
as torch-lr-finder's LRFinder.plot() draws one: the loss against the LR on
a log axis, the curve the coordinator's analysis read the bounds from
(Recommendation.position: zero-lag smoothing, not the causal EMA its
divergence rule reads, which runs ~50 points late), and the recommended
bounds. matplotlib is optional: without it
plot() raises ImportError saying how to install it."""

import math


def plot_range_test(rt, ax=None, show_bounds=True):
    try:
        import matplotlib
        if ax is None:
            import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("rt.plot() needs matplotlib: apt install "
                          "python3-matplotlib (or pip install matplotlib)") from None
    if ax is None:
        _, ax = plt.subplots()
    lrs = [lr for _, lr, _ in rt.losses]
    losses = [float(loss) for _, _, loss in rt.losses]
    ax.plot(lrs, losses, color="0.7", linewidth=1, label="loss")
    rec = rt.run_recommendation
    # The curve the bounds were read from (zero-lag, up to the divergence);
    # a coordinator without it sent the causal EMA only, which runs late.
    curve, label = [], ""
    if rec is not None and len(rec.position) > 0:
        curve, label = rec.position, "smoothed (the analysis's curve)"
    elif rec is not None:
        curve, label = rec.smoothed, "smoothed (EMA)"
    if len(curve) > 0:
        n = min(len(curve), len(lrs))
        smoothed = [s if math.isfinite(s) else float("nan") for s in curve[:n]]
        ax.plot(lrs[:n], smoothed, color="C0", label=label)
    if show_bounds:
        try:
            bounds = rt.result
            min_lr, max_lr, what = bounds.min_lr, bounds.max_lr, "bounds"
        except Exception:  # the job has other runs going, or failed
            min_lr = rec.min_lr if rec is not None else 0.0
            max_lr = rec.max_lr if rec is not None else 0.0
            what = "this run's bounds"
        if min_lr > 0 and max_lr > 0:
            ax.axvspan(min_lr, max_lr, color="C2", alpha=0.15,
                       label=f"{what} {min_lr:.3g}..{max_lr:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title(f"lrtune range test {rt.job_id} run {rt.run_index}")
    finite = [v for v in losses if math.isfinite(v)]
    if finite:  # a diverged tail would squash the rest
        low, high = min(finite), sorted(finite)[int(0.95 * (len(finite) - 1))]
        ax.set_ylim(low - 0.05 * (high - low + 1e-12), high + 0.3 * (high - low + 1e-12))
    ax.legend()
    del matplotlib
    return ax
