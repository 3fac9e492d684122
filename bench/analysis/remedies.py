"""Remedies report: for a sweep that swept `strategy` or its split (ddp against powersgd, diloco,
diloco+balanced, ...), which strategy gives the most tokens/s at each inter-site latency, and what
it costs in loss.

Speed alone misleads: local-update strategies (localsgd, diloco) and compressed gradients train a
different model per token than ddp. So each strategy is compared with ddp at the same latency
(and the same values of any other swept key) twice: tokens/s, and the loss reached after the same
number of tokens. The pure functions (curve_of, loss_at_tokens, loss_gap_pct, summarize,
sentence) need no matplotlib; bench.analysis.remedies_report loads the run directories, draws
(remedies_plots) and returns the HTML section.
"""
from __future__ import annotations

import math

from bench.costs import split

BASELINE = "ddp"
LATENCY_KEY = "network.inter_site.latency_ms"
SMOOTH_SHARE = 0.1   # the loss at N tokens is the mean over the last 10% of steps up to N
SAME_LOSS_PCT = 0.1  # gaps smaller than this are reported as "the same loss"
FEW_STEPS = 200  # loss gaps of shorter runs get a caveat (see _caveat)


# ---------------------------------------------------------------------------------------------
# Loss curves and the loss gap at equal tokens (pure).

def curve_of(steps: dict) -> dict | None:
    """{tokens, seconds, loss}: per step (warmup included: those tokens were trained on too), the
    cumulative tokens over all ranks, the cumulative step time in s (max step_ms over ranks: the
    step ends when its slowest rank does) and the loss averaged over ranks. `steps` is
    rundir.Run.all_steps, already in device time."""
    tokens, seconds, loss, n_tok, ms = [], [], [], 0.0, 0.0
    for step in sorted(steps):
        recs = steps[step]
        n_tok += sum(r.get("tokens") or 0 for r in recs)
        ms += max(r["step_ms"] for r in recs)
        losses = [r.get("loss") for r in recs]
        if any(v is None for v in losses):  # a step without a loss still cost tokens and time
            continue
        weights = [r.get("tokens") or 1 for r in recs]  # the global batch's loss (balanced)
        tokens.append(n_tok)
        seconds.append(ms / 1000.0)
        loss.append(sum(v * w for v, w in zip(losses, weights)) / sum(weights))
    return {"tokens": tokens, "seconds": seconds, "loss": loss} if loss else None


def loss_at_tokens(curve: dict, n_tokens: float, share: float = SMOOTH_SHARE) -> float | None:
    """Smoothed loss after n_tokens: the mean loss of the last `share` of the steps (rounded, at
    least one) whose cumulative tokens do not exceed n_tokens. A single step is too noisy."""
    upto = [l for t, l in zip(curve["tokens"], curve["loss"]) if t <= n_tokens * (1 + 1e-9)]
    if not upto:
        return None
    k = max(1, math.floor(share * len(upto) + 0.5))
    return sum(upto[-k:]) / k


def loss_gap_pct(curve: dict | None, base: dict | None) -> float | None:
    """100 * (L / L_ddp - 1), both smoothed at the largest token count both runs reached: > 0
    means the strategy's model is worse than ddp's for the same data."""
    if not curve or not base:
        return None
    n = min(curve["tokens"][-1], base["tokens"][-1])
    mine, ref = loss_at_tokens(curve, n), loss_at_tokens(base, n)
    if mine is None or ref is None or ref == 0:
        return None
    return 100.0 * (mine / ref - 1.0)


# ---------------------------------------------------------------------------------------------
# Grouping, the table, winners and sentences (pure).

def strategy_of(row: dict) -> str:
    """The row's strategy name as its run reported it ('diloco+balanced'); a summary's
    strategy description is a dict with a name. A point that wrote no summary is named from
    its swept keys, the same way (bench.costs.split.label_of)."""
    value = row.get("strategy")
    if isinstance(value, dict):
        value = value.get("name")
    if value:
        return str(value)
    swept = row["swept"]
    name = swept.get("strategy.name") or swept.get("strategy")
    return split.label_of(str(name), swept.get("strategy.split")) if name else "?"


def strategy_swept(swept_keys: list[str]) -> bool:
    """Does the sweep choose strategies (`strategy`, `strategy.name` or `strategy.split`)?"""
    return any(k in split.KEYS for k in swept_keys)


def number(value):
    """A swept value as a float, or None where it is not a number (a preset's name)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _value(value):
    """"50", 50 and 50.0 are one latency: group by number when the value is one."""
    as_number = number(value)
    return str(value) if as_number is None else as_number


def _show(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def others_label(swept: dict) -> str:
    """The swept values besides strategy and latency: 'cluster=mixed4' or ''."""
    return ", ".join(f"{k.split('.')[-1]}={_show(v)}" for k, v in swept.items() if k != LATENCY_KEY)


def group_keys(swept_keys: list[str]) -> list[str]:
    """Swept keys other than those choosing the strategy and its split: points agreeing on
    these are compared with each other (diloco+balanced beside diloco and ddp)."""
    return [k for k in swept_keys if k not in split.KEYS]


def group_label(swept: dict) -> str:
    """'latency 50 ms', 'latency 50 ms, cluster=mixed4' or 'all points'."""
    lat = number(swept.get(LATENCY_KEY))
    parts = ([f"latency {lat:g} ms"] if lat is not None else []) + [others_label(swept)]
    return ", ".join(p for p in parts if p) or "all points"


def summarize(doc: dict, curves: dict) -> dict:
    """remedies.json: {sweep_id, latency_key, groups: [verdict], points: [table row]}. `curves`
    maps a point's index to curve_of(...) or None. Groups are in increasing latency; within a
    group ddp comes first, then strategies in sweep order."""
    keys = group_keys(doc["swept_keys"])
    ok = [r for r in doc["points"] if r.get("status") == "ok"]
    order = list(dict.fromkeys([BASELINE] + [strategy_of(r) for r in doc["points"]]))
    groups: dict[tuple, list[dict]] = {}
    for row in ok:
        groups.setdefault(tuple(_value(row["swept"].get(k)) for k in keys), []).append(row)
    lat = keys.index(LATENCY_KEY) if LATENCY_KEY in keys else None

    def latency(key):  # sorted by number; unknown latencies last, in sweep order (sort is stable)
        value = key[lat] if lat is not None else None
        return value if isinstance(value, float) else math.inf

    out = {"sweep_id": doc.get("sweep_id"), "latency_key": LATENCY_KEY if lat is not None else None,
           "groups": [], "points": []}
    for key in sorted(groups, key=latency):
        swept = dict(zip(keys, key))
        members = sorted(groups[key], key=lambda r: order.index(strategy_of(r)))
        points = [_point(r, members, curves, swept) for r in members]
        verdict = _verdict(points, swept)
        verdict["steps"] = _steps_compared(members, curves)
        verdict["sentence"] = sentence(verdict)
        out["groups"].append(verdict)
        out["points"].extend(points)
    return out


def _point(row: dict, members: list[dict], curves: dict, swept: dict) -> dict:
    base = next((r for r in members if strategy_of(r) == BASELINE), None)
    tps, base_tps = row.get("tokens_per_s"), base and base.get("tokens_per_s")
    gap = base and loss_gap_pct(curves.get(row["index"]), curves.get(base["index"]))
    return {"index": row["index"], "point": row.get("point"), "strategy": strategy_of(row),
            "group": group_label(swept), "swept": swept,
            "latency_ms": number(swept.get(LATENCY_KEY)),
            "tokens_per_s": tps,
            "speedup_vs_ddp": tps / base_tps if tps is not None and base_tps else None,
            "efficiency": row.get("efficiency_overall") or row.get("efficiency"),
            "inter_site_bytes_per_step": row.get("inter_site_bytes_per_step"),
            "final_loss": row.get("final_loss"), "loss_gap_pct": gap}


def _verdict(points: list[dict], swept: dict) -> dict:
    """The winner is the highest tokens/s; ddp comes first, so a tie goes to ddp. has_ddp: a
    ddp point with tokens/s to compare with (without one there is no speedup)."""
    ranked = [p for p in points if p["tokens_per_s"] is not None]
    winner = max(ranked, key=lambda p: p["tokens_per_s"], default=None)
    runner = max((p for p in ranked if p is not winner), key=lambda p: p["tokens_per_s"],
                 default=None)
    has_base = any(p["strategy"] == BASELINE and p["tokens_per_s"] for p in ranked)
    return {"group": group_label(swept), "swept": swept,
            "latency_ms": number(swept.get(LATENCY_KEY)),
            "winner": winner and winner["strategy"],
            "tokens_per_s": winner and winner["tokens_per_s"],
            "speedup": winner and winner["speedup_vs_ddp"],
            "loss_gap_pct": winner and winner["loss_gap_pct"], "has_ddp": has_base,
            "runner_up": runner and runner["strategy"],
            "runner_up_speedup": runner and runner["speedup_vs_ddp"]}


def _steps_compared(members: list[dict], curves: dict) -> int | None:
    """Steps of the shortest loss curve in the group (None without curves)."""
    lengths = [len(curves[r["index"]]["loss"]) for r in members if curves.get(r["index"])]
    return min(lengths) if lengths else None


def _where(verdict: dict) -> str:
    lat, rest = number(verdict["swept"].get(LATENCY_KEY)), others_label(verdict["swept"])
    if lat is None:
        return f"With {rest}" if rest else "Across the sweep"
    return f"At {lat:g} ms inter-site latency" + (f" ({rest})" if rest else "")


def sentence(verdict: dict) -> str:
    """One sentence naming the winner, its speedup over ddp and its loss gap at equal tokens."""
    where, win = _where(verdict), verdict["winner"]
    if win is None:
        return f"{where}, no point reported tokens/s."
    if not verdict["has_ddp"]:
        return (f"{where}, {win} has the highest tokens/s ({verdict['tokens_per_s']:,.0f}); "
                "there is no ddp point to compare it with.")
    if win == BASELINE:
        if verdict["runner_up"] is None:
            return f"{where}, ddp wins: no other strategy finished."
        speed = verdict["runner_up_speedup"]
        best = f" (the best, {verdict['runner_up']}, reaches {speed:.2f}x)" if speed else ""
        return f"{where}, ddp wins: no remedy beats its tokens/s{best}."
    head = f"{where}, {win} wins: {verdict['speedup']:.2f}x ddp's tokens/s"
    gap = verdict["loss_gap_pct"]
    if gap is None:
        return f"{head}; its loss at equal tokens could not be compared (no step records)."
    if abs(gap) < SAME_LOSS_PCT:
        return f"{head}, at the same loss as ddp at equal tokens."
    side = "above" if gap > 0 else "below"
    return f"{head}, at a loss {abs(gap):.1f}% {side} ddp's at equal tokens{_caveat(verdict)}."


def _caveat(verdict: dict) -> str:
    """Early in training the loss depends more on which sequences were drawn than on the
    strategy (the tiny model's loss falls steeply): say so for short runs."""
    steps = verdict.get("steps")
    if steps is None or steps >= FEW_STEPS:
        return ""
    return (f" (after only {steps} steps, where the loss says more about the data drawn than "
            f"the strategy: compare at {FEW_STEPS}+ steps, e.g. benchmarks/remedies.py)")


def human_bytes(value) -> str:
    """1234567 -> '1.23 MB' (decimal units, like link bandwidths); None -> '-'."""
    if value is None:
        return "-"
    value = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000.0:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1000.0
    return f"{value:.3g} TB"
