"""Advice in words and tables: the recommendation in one paragraph, the candidates (predicted and,
where checked, emulated tokens/s, efficiency, inter-site bytes, loss cost with its source) and what
each knob buys. The same text goes to the console and to advice.md; the JSON is advice.json."""
from __future__ import annotations

from bench.advise.search import BASIS_EQUAL_LOSS

TABLE_ROWS = 12


def tps(x) -> str:
    return "-" if x is None else f"{x:,.0f}"


def knobs_text(knobs: dict) -> str:
    short = {"bucket_cap_mb": "cap", "sync_every": "H", "powersgd_rank": "rank"}
    return " ".join(f"{short[k]}={v:g}" if isinstance(v, float) else f"{short[k]}={v}"
                    for k, v in knobs.items() if k in short)


def loss_text(loss: dict) -> str:
    """'+2.49% ±0.30 (x1.31 tokens) [benchmarks/loss_costs.py, 300 steps, 3 seeds]' or why not."""
    if not loss["measured"]:
        return f"not measured ({loss['why']})"
    if loss.get("overrides") == "the baseline":
        return "the baseline"
    sd = loss.get("gap_std_pct")
    gap = f"{loss['gap_pct']:+.2f}%" + (f" ±{sd:.2f}" if sd is not None else "")
    ratio = loss.get("token_ratio")
    tokens = "never reached ddp's loss" if ratio is None else f"x{ratio:.2f} tokens" + (
        f" ±{loss['token_ratio_std']:.2f}" if loss.get("token_ratio_std") is not None else "")
    return f"{gap} ({tokens}) [{loss['source']} @{loss['commit']}, {loss['steps']} steps, " \
           f"{loss['seeds']} seeds]"


def paragraph(doc: dict) -> str:
    best, base = doc["recommendation"], doc["baseline"]
    where = f"{doc['cluster']} ({doc['world_size']:,} ranks over {doc['network']})"
    text = [f"For {where}, run `{best['overrides']}`: predicted {tps(best['tokens_per_s'])} "
            f"tokens/s, x{best['speedup']:.2f} ddp's {tps(base['tokens_per_s'])}."]
    if best["basis"] == BASIS_EQUAL_LOSS:
        lo, hi = (x / base["tokens_per_s"] for x in best["equal_loss_range"])
        text.append(f"At equal loss that is x{best['equal_loss_speedup']:.2f} ddp (x{lo:.2f} to "
                    f"x{hi:.2f} over the token ratio's seed spread): its loss cost is "
                    f"{loss_text(best['loss'])}, measured on {best['loss']['model']}, which a "
                    "real model at a real horizon may not repeat.")
        rival = _rival(doc)
        if rival:
            text.append(f"Its lead over {rival['strategy']} (`{rival['overrides']}`, x"
                        f"{rival['equal_loss_speedup']:.2f} at equal loss) is within that spread.")
    else:
        text.append(f"Its loss cost: {loss_text(best['loss'])}; ranked by tokens/s only.")
    emulated = best.get("emulated", {}).get("tokens_per_s")
    base_emulated = base.get("emulated", {}).get("tokens_per_s")
    if emulated:
        text.append(f"Emulated here it made {tps(emulated)} tokens/s (the prediction is "
                    f"{best['error_pct']:+.1f}% off)")
        if base_emulated:
            text[-1] += (f"; ddp made {tps(base_emulated)}: x{emulated / base_emulated:.2f} "
                         f"against the x{best['speedup']:.2f} claimed")
        text[-1] += "."
    else:
        text.append(f"Predicted only: {doc['mode_why']}.")
    faster = doc.get("fastest_unmeasured")
    if faster and faster["tokens_per_s"] > best["tokens_per_s"]:
        text.append(f"Faster on tokens/s alone: `{faster['overrides']}` "
                    f"({tps(faster['tokens_per_s'])}, x{faster['speedup']:.2f} ddp), whose loss "
                    f"cost is {loss_text(faster['loss'])}: measure it (benchmarks/loss_costs.py) "
                    "before relying on it.")
    return " ".join(text)


def _rival(doc: dict) -> dict | None:
    """The best equal-loss row of another strategy whose range overlaps the recommendation's."""
    best = doc["recommendation"]
    for r in doc["ranked"][1:]:
        if r["basis"] == BASIS_EQUAL_LOSS and r["strategy"] != best["strategy"]:
            return r if r["equal_loss_range"][1] >= best["equal_loss_range"][0] else None
    return None


def table(doc: dict) -> list[str]:
    """Markdown rows: the verified candidates first (with ddp), then the rest of the ranking."""
    head = ["#", "strategy", "knobs", "predicted tok/s", "emulated tok/s", "pred. error",
            "vs ddp", "at equal loss vs ddp", "efficiency", "inter-site MB/step", "loss cost",
            "ranked by"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    shown = doc["verified"] or []
    done = {r.get("position") for r in shown}
    rest = [r for r in doc["ranked"] if r["position"] not in done]
    rows = shown + rest[:max(0, TABLE_ROWS - len(shown))]
    for r in rows:
        em = r.get("emulated", {})
        err = r.get("error_pct")
        eq = r.get("equal_loss_speedup")
        cells = [str(r.get("position", "ddp")), r["strategy"], knobs_text(r["knobs"]),
                 tps(r["tokens_per_s"]), tps(em.get("tokens_per_s")) if em else "-",
                 f"{err:+.1f}%" if err is not None else "-", f"x{r['speedup']:.2f}",
                 f"x{eq:.2f}" if eq is not None else "-", f"{r['efficiency']:.1%}",
                 f"{r['inter_site_bytes_per_step'] / 1e6:,.1f}", loss_text(r["loss"]),
                 "equal loss" if r["basis"] == BASIS_EQUAL_LOSS else "tokens/s only"]
        if em.get("status") == "failed":
            cells[4] = "failed"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def knob_lines(doc: dict) -> list[str]:
    out = []
    for k in doc["knobs"]:
        points = ", ".join(
            f"{p['value']:g}: {tps(p['tokens_per_s'])}" if isinstance(p["value"], float)
            else f"{p['value']}: {tps(p['tokens_per_s'])}" for p in k["points"])
        unmeasured = [p for p in k["points"] if p["basis"] != BASIS_EQUAL_LOSS]
        note = f" ({len(unmeasured)} of them without an equal-loss rate: tokens/s only)" \
            if unmeasured else ""
        out.append(f"- {k['knob']} (best {k['best']}): tokens/s {points}{note}")
    return out


def markdown(doc: dict, plot_name: str | None) -> str:
    s = doc["search"]
    parts = ["# hetbench advise", "", paragraph(doc), "",
             f"Searched {s['candidates']} candidates with the predictor in {s['seconds']:.2f} s "
             f"({doc['mode']}). Overrides: `{' '.join(doc['overrides']) or '(defaults)'}`. Every "
             "candidate is predicted over its steady rate: "
             f"{s['warmup']} warm-up steps, then {s['measured']} steps or one sync period "
             "(H steps) for localsgd / diloco.", "", "## Candidates", "", *table(doc), "",
             "## What each knob buys", "", "With the other knobs at the recommendation's:", "",
             *knob_lines(doc), "", "## Loss costs", "", _loss_source(doc)]
    if plot_name:
        parts += ["", f"![tokens/s of the candidates]({plot_name})"]
    return "\n".join(parts) + "\n"


def _loss_source(doc: dict) -> str:
    src = doc["loss_source"]
    return (f"From `{src['source']}` at commit {src['commit']} ({src['date']}): every strategy "
            f"and knob value listed as measured trained {src['steps']} steps "
            f"({int(src['tokens']):,} tokens) of {src['model']} beside ddp, over seeds {src['seeds']}; gap = loss at equal "
            "tokens vs ddp (mean ± sample sd over seeds), token ratio = tokens to reach the loss "
            "ddp had at half its run, over ddp's. The balanced split and the bucket cap do not "
            "change the gradient, so a measurement carries over to them; any other knob value "
            "is 'not measured' and ranked by tokens/s only.")


def console(doc: dict) -> str:
    return "\n".join([paragraph(doc), "", *table(doc), "", "what each knob buys:",
                      *knob_lines(doc)])
