"""The loss cost of a candidate, from a measurement only: bench/advise/loss_costs.json, written by
`benchmarks/loss_costs.py` (each strategy and knob value trained beside ddp over several seeds).

A candidate matches a measurement when its strategy and every knob that changes the optimisation
agree (H for localsgd / diloco, the rank and start step for powersgd, the outer optimiser for
diloco). Two things do not change it, and carry a measurement over: the balanced split (the
global gradient is the uniform split's to float rounding, docs/remedies.md#combinations) and the
bucket cap (DDP's buckets change only the order of a sum). Anything else is "not measured": no
interpolation, no guess.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

DATA = Path(__file__).resolve().parent / "loss_costs.json"
SAME_MATHS = ("ddp", "balanced", "hierarchical")  # the same gradient as ddp every step
# The knobs of each strategy that change what it learns (the measurement's own experiment sets
# the rest: experiment=remedies).
LOSS_KNOBS = {"powersgd": ("powersgd_rank", "powersgd_start_step"),
              "localsgd": ("sync_every",), "diloco": ("sync_every", "outer_lr", "outer_momentum")}
HALF = 0.5  # token_ratio compares with ddp's loss at half its run (room to catch up)
SMOOTH_SHARE = 0.1


@functools.lru_cache(maxsize=4)
def load(path: str = str(DATA)) -> dict:
    return json.loads(Path(path).read_text())


def lookup(name: str, strategy_cfg, doc: dict | None = None) -> dict:
    """The loss cost of strategy `name` (the preset, without its split) with strategy_cfg's
    knobs: {measured: True, gap_pct, gap_std_pct, token_ratio, token_ratio_std, source, steps,
    seeds, tokens, overrides} or {measured: False, why}."""
    doc = doc or load()
    base = {"source": doc["source"], "commit": doc["commit"], "steps": doc["steps"],
            "seeds": len(doc["seeds"]), "tokens": doc["tokens"], "model": doc["model"]}
    if name == "ddp":
        return {"measured": True, "gap_pct": 0.0, "gap_std_pct": 0.0, "token_ratio": 1.0,
                "token_ratio_std": 0.0, **base, "overrides": "the baseline", "why": "ddp itself"}
    knobs = {k: strategy_cfg[k] for k in LOSS_KNOBS.get(name, ())}
    for entry in doc["entries"]:
        if entry["strategy"] != name:
            continue
        if all(_same(entry["knobs"].get(k), v) for k, v in knobs.items()):
            return {"measured": True, **base, **{k: entry[k] for k in (
                "gap_pct", "gap_std_pct", "token_ratio", "token_ratio_std", "overrides")}}
    shown = ", ".join(f"{k}={v}" for k, v in knobs.items())
    return {"measured": False, "why": f"{name} at {shown} not measured" if shown
            else f"{name} not measured"}


def _same(a, b) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return a == b


def token_ratio(curve: dict | None, base: dict | None) -> float | None:
    """Tokens `curve` needs to reach the smoothed loss `base` (ddp) had at half its run, over the
    tokens ddp itself needed to first reach it, both by the same rule (a trailing mean over
    SMOOTH_SHARE of the steps up to the half first at or below the target): the data it costs for
    the same model (> 1: more). The same rule on both sides makes a curve's ratio to itself
    exactly 1 (an early noisy dip counts for both). None where it never got there."""
    if not curve or not base:
        return None
    half = HALF * base["tokens"][-1]
    upto = [i for i, t in enumerate(base["tokens"]) if t <= half * (1 + 1e-9)]
    if not upto:
        return None
    k = max(1, math.floor(SMOOTH_SHARE * len(upto) + 0.5))
    target = sum(base["loss"][i] for i in upto[-k:]) / k
    mine, ref = _first_at_or_below(curve, target, k), _first_at_or_below(base, target, k)
    return None if mine is None or not ref else mine / ref


def _first_at_or_below(curve: dict, target: float, k: int) -> float | None:
    loss = curve["loss"]
    for i in range(k - 1, len(loss)):
        if sum(loss[i - k + 1:i + 1]) / k <= target * (1 + 1e-12):
            return curve["tokens"][i]
    return None
