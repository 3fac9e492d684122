"""The search: every strategy and split (bench.predict.remedy.candidates) times the knobs that
apply to it, each predicted (bench.predict.fast), each with its loss cost from a measurement
(bench.advise.losscost), ranked by tokens/s at equal loss.

Tokens/s at equal loss is tokens/s divided by the measured token ratio (the tokens a strategy
needs to reach the loss ddp reaches, over ddp's; a ratio below 1 counts as 1): a strategy that trains 2x faster but needs 1.3x
the tokens for the same model gives 1.54x ddp's progress. Candidates whose loss cost was not
measured, or that never reached ddp's loss in the measured run, are ranked after, by tokens/s
only, and say so: their tokens/s is not a rate of progress.

Horizon: every variant is predicted (and emulated, bench.advise.verify) over WARMUP steps (or up to
PowerSGD's first compressed step) and then MEASURED steps, or one whole sync period (H steps) for
localsgd / diloco, so that its tokens/s is its steady rate, sync included.
"""
from __future__ import annotations

from dataclasses import replace

from bench.advise import losscost
from bench.predict.fast import Predictor, Variant, variant_of
from bench.predict.remedy import candidates as strategy_splits

GRID = {"bucket_cap_mb": (25.0, 100.0, 1000.0), "sync_every": (8, 16, 50, 200),
        "powersgd_rank": (1, 4, 16)}
WARMUP = 4
MEASURED = 16
BASIS_EQUAL_LOSS = "equal loss"
BASIS_NOT_MEASURED = "tokens/s only: loss cost not measured"
BASIS_NOT_REACHED = "tokens/s only: did not reach ddp's loss in the measured run"


def horizon(cfg, v: Variant) -> Variant:
    """v over the steps it is predicted and emulated: warm-up, then its steady rate."""
    warmup = max(WARMUP, int(cfg.strategy.powersgd_start_step)) if v.name == "powersgd" \
        else WARMUP
    return replace(v, warmup_steps=warmup, steps=warmup + (v.sync_every if v.outer else MEASURED))


def _values(cfg, knob: str) -> list:
    own = type(GRID[knob][0])(cfg.strategy[knob])
    return sorted(set(GRID[knob]) | {own})


def candidates(cfg) -> list[Variant]:
    """Every strategy and split, each knob over GRID and cfg's own value; H only for localsgd and
    diloco, the rank only for powersgd."""
    out = []
    for name, split in strategy_splits():
        for cap in _values(cfg, "bucket_cap_mb"):
            hs = _values(cfg, "sync_every") if name in ("localsgd", "diloco") else [None]
            ranks = _values(cfg, "powersgd_rank") if name == "powersgd" else [None]
            for h in hs:
                for r in ranks:
                    v = variant_of(cfg, name=name, split=split, bucket_cap_mb=cap)
                    v = replace(v, sync_every=h or v.sync_every, powersgd_rank=r or v.powersgd_rank)
                    out.append(horizon(cfg, v))
    return out


def baseline(cfg) -> Variant:
    """ddp as configured (its bucket cap), the uniform split: what the advice is measured against."""
    return horizon(cfg, variant_of(cfg, name="ddp", split="uniform"))


def row_of(predictor: Predictor, v: Variant, doc: dict) -> dict:
    p = predictor.predict(v)
    loss = losscost.lookup(_loss_name(v), predictor.configured(v).strategy, doc)
    row = {"strategy": v.label, "variant": v, "overrides": " ".join(v.strategy_overrides()),
           "steps": {"warmup": v.warmup_steps, "total": v.steps},
           "knobs": v.knobs(), "tokens_per_s": p["tokens_per_s"],
           "step_ms_p50": p["step_ms"]["p50"], "efficiency": p["efficiency_overall"],
           "ideal_share": p["ideal_share"], "world_size": p["world_size"],
           "inter_site_bytes_per_step": p["inter_site_bytes_per_step"], "loss": loss}
    row.update(_equal_loss(p["tokens_per_s"], loss))
    return row


def _loss_name(v: Variant) -> str:
    """The measurement that applies: strategy=balanced was measured itself; any other strategy
    with the balanced split carries its uniform split's (the same gradient)."""
    return "balanced" if v.label == "balanced" else v.name


def _equal_loss(tps: float, loss: dict) -> dict:
    if not loss["measured"]:
        return {"basis": BASIS_NOT_MEASURED, "equal_loss_tokens_per_s": None,
                "equal_loss_range": None}
    ratio, sd = loss.get("token_ratio"), loss.get("token_ratio_std") or 0.0
    if ratio is None:
        return {"basis": BASIS_NOT_REACHED, "equal_loss_tokens_per_s": None,
                "equal_loss_range": None}
    # No strategy is credited with learning faster than ddp's own gradient: a measured ratio
    # below 1 is the seeds' spread (docs/advise.md), so it counts as 1.
    low = tps / max(1.0, ratio + sd)
    high = tps / max(1.0, ratio - sd)
    return {"basis": BASIS_EQUAL_LOSS, "equal_loss_tokens_per_s": tps / max(1.0, ratio),
            "equal_loss_range": [low, high]}


def rank(rows: list[dict]) -> list[dict]:
    """Equal-loss rows by tokens/s at equal loss, then the rest by tokens/s, each group apart."""
    def key(r):
        group = (BASIS_EQUAL_LOSS, BASIS_NOT_MEASURED, BASIS_NOT_REACHED).index(r["basis"])
        value = r["equal_loss_tokens_per_s"] if group == 0 else r["tokens_per_s"]
        return (group, -value)
    return sorted(rows, key=key)


def search(cfg, doc: dict | None = None) -> dict:
    """{ranked: rows best first, baseline: ddp's row, evaluated: how many predictions}."""
    doc = doc or losscost.load()
    predictor = Predictor(cfg)
    rows = [row_of(predictor, v, doc) for v in candidates(cfg)]
    base = row_of(predictor, baseline(cfg), doc)
    for r in rows:
        r["speedup"] = r["tokens_per_s"] / base["tokens_per_s"]
        eq = r["equal_loss_tokens_per_s"]
        r["equal_loss_speedup"] = eq / base["tokens_per_s"] if eq is not None else None
    base["speedup"], base["equal_loss_speedup"] = 1.0, 1.0
    return {"ranked": rank(rows), "baseline": base, "evaluated": len(rows) + 1,
            "predictor": predictor}


def knob_effects(result: dict) -> list[dict]:
    """What each knob buys: for the best candidate, tokens/s as one knob takes each of its values
    with the others at the best's (from the searched rows: every combination is among them)."""
    best = result["ranked"][0]
    rows = {_key(r["variant"].name, r["knobs"]): r for r in result["ranked"]}
    exchange = _exchange(best["variant"].name)
    out = []
    for knob, value in best["knobs"].items():
        points = []
        for (name, knobs), r in sorted(rows.items(), key=lambda kv: str(kv[0][1])):
            other = dict(knobs)
            if name == exchange and knob in other and \
                    _key(name, {**other, knob: best["knobs"][knob]}) == _key(exchange, best["knobs"]):
                points.append({"value": other[knob], "tokens_per_s": r["tokens_per_s"],
                               "equal_loss_tokens_per_s": r["equal_loss_tokens_per_s"],
                               "basis": r["basis"]})
        points.sort(key=lambda p: (str(type(p["value"])), p["value"]))
        out.append({"knob": knob, "best": value, "points": points})
    return out


def _exchange(name: str) -> str:
    return "ddp" if name == "balanced" else name  # the preset is ddp with the balanced split


def _key(name: str, knobs: dict) -> tuple:
    return (_exchange(name), tuple(sorted(knobs.items())))
