"""The analysis in plain sentences, for the console verdict and the HTML report."""
from __future__ import annotations

from bench.results.console import milliseconds, percent
from bench.results.rundir import Run

NOTABLE_SLOWDOWN = 1.02
"""Per-rank what-if slowdowns under 2% are not worth a sentence."""


def _cut(slowdown: float) -> float:
    """Share of the step removed when a slowdown of `slowdown` goes away."""
    return 1.0 - 1.0 / slowdown


def headline(run: Run, analysis: dict) -> str:
    w = analysis["whatif"]
    clock = (f"emulated device time (this machine ran x{run.time_scale:.2f} slower)"
             if run.time_base == "device" else "wall-clock time")
    return (f"{run.world_size} ranks, {len(run.steps)} measured steps, in {clock}: median step "
            f"{w['step_ms_p50']:.2f} ms against an ideal {w['ideal_ms_p50']:.2f} ms "
            f"(balanced by speed, no link delay): total slowdown x{w['total']:.2f}.")


def rank_sentences(run: Run, analysis: dict) -> list[str]:
    rows = {row["rank"]: row for row in analysis["stragglers"]}
    per_rank = sorted(analysis["whatif"]["per_rank"], key=lambda r: -r["slowdown"])
    out = []
    for item in per_rank:
        if item["slowdown"] < NOTABLE_SLOWDOWN:
            break
        row = rows[item["rank"]]
        out.append(f"{run.label(item['rank'])} was last ready in "
                   f"{percent(row['last_arrival_share'])} of steps; making it as fast as the "
                   f"others would cut the step by {percent(_cut(item['slowdown']))} "
                   f"(x{item['slowdown']:.2f}).")
    if not out:
        out.append("No single rank holds the step back: making any one rank as fast as the "
                   f"others would cut the step by less than {_cut(NOTABLE_SLOWDOWN):.0%}.")
    for row in analysis["stragglers"]:
        out += _straggler_sentences(run, row)
    return out


def _straggler_sentences(run: Run, row: dict) -> list[str]:
    """Flagged: slower than its own device should be. Slow only as its device predicts: said
    once, as what it is (on a mixed fleet that is not news)."""
    label, score, t = run.label(row["rank"]), row["relative_score"], run.threshold
    out = []
    if row["reason"] == "below_expected":
        out.append(f"{label} is flagged as a straggler: score {score:.2f} is under {t:.2f} x "
                   f"the {row['expected_score']:.2f} its device should reach.")
    elif row["reason"] == "over_target":
        out.append(f"{label} is flagged as a straggler: its compute is more than 1/{t:.2f} of "
                   "its emulated device's time.")
    elif row["reason"] == "below_threshold":
        out.append(f"{label} is flagged as a straggler: score {score:.2f} is under the "
                   f"threshold {t:.2f} (no device model to say what it should reach).")
    elif row["reason"] == "device":
        out.append(f"{label} is slower than the fastest (score {score:.2f}) only as its "
                   f"device's modelled time predicts ({row['expected_score']:.2f}): not a straggler.")
    elif row["reason"] == "host":
        out.append(f"{label} is slow (score {score:.2f}) because this machine fell behind the "
                   "emulated timeline in many of its steps (a busy host), not because of its "
                   "device: not a straggler. Rerun on a quieter machine, or leave "
                   "emulation.lagged_steps=exclude.")
        return out  # anomalous or not, the host explains it
    if row["anomalous"]:
        out.append(f"{label} is anomalous: score {score:.2f}, though its device should reach "
                   f"{row['expected_score']:.2f} - suspect the device itself, not the model mix.")
    return out


def status_sentence(run: Run, analysis: dict) -> str | None:
    """A run that did not finish says so first: what follows covers what it recorded."""
    status = analysis.get("status")
    if status in (None, "ok", "running"):
        return None
    error = run.metadata.get("error") or run.summary.get("error")
    why = f" ({error})" if error else ""
    if status == "incomplete":
        return ("The run did not finish: its metadata still says running and it left no "
                "summary.json (killed, or still going). This analyses the "
                f"{len(run.steps)} measured steps every rank recorded so far.")
    if status == "degraded":
        kept = ((run.config.get("emulation") or {}).get("lagged_steps") or "exclude") == "keep"
        return (f"The run is degraded{why}: this analyses {len(run.steps)} measured steps, "
                + ("the lagged ones included (emulation.lagged_steps=keep)." if kept
                   else "leaving out those in which this machine fell behind."))
    verb = "was interrupted" if status == "interrupted" else "failed"
    return (f"The run {verb}{why}: this analyses the {len(run.steps)} measured steps that "
            "every rank recorded before it stopped.")


def transient_sentences(run: Run, analysis: dict) -> list[str]:
    out = []
    for t in analysis["transients"]:
        out.append(f"{run.label(t['rank'])} ran {t['extra_ms']:.1f} ms per step slower than its "
                   f"norm in steps {t['start_step']}-{t['end_step'] - 1}.")
    return out or ["No transient: no rank ran slower than its own norm for a stretch of steps."]


def top_k_sentence(analysis: dict) -> str | None:
    top = analysis["whatif"]["top_k"]
    if not top or top[0]["recovered_share"] is None:
        return None
    k1 = top[0]
    text = (f"Fixing the worst rank ({k1['ranks'][0]}) recovers "
            f"{percent(k1['recovered_share'])} of the gap to the ideal step")
    if len(top) > 2:
        k2 = top[1]
        text += (f"; fixing the two worst ({', '.join(map(str, k2['ranks']))}) recovers "
                 f"{percent(k2['recovered_share'])}")
    return text + "."


def network_sentence(analysis: dict) -> str | None:
    parts = analysis["whatif"]["breakdown"]
    if parts["network_ms"] <= 0:
        return None
    share = percent(parts["network_ms"] / parts["measured_ms"])
    return (f"Injected link delay adds {milliseconds(parts['network_ms'])} ms to the median "
            f"step ({share} of it).")


def mfu_sentence(run: Run) -> str | None:
    """Cluster MFU against the sum of the devices' own peaks, and which ranks wait for their
    hosts (launch-bound), where the run measured or modelled it."""
    s = run.summary
    parts = []
    if s.get("mfu") is not None:
        prec = (s.get("precision") or {}).get("device_model", "")
        parts.append(f"Cluster MFU {percent(s['mfu'])}: {s['achieved_tflops']:,.2f} TFLOP/s "
                     f"achieved against {s['peak_tflops']:,.0f} TFLOP/s, the sum of every "
                     f"device's own {prec} peak ({percent(s['mfu_compute'])} while computing).")
    bound = [r for r in s.get("ranks") or [] if r.get("bound") == "launch-bound"]
    if bound:
        busy = [r["gpu_busy_share"] for r in bound if r.get("gpu_busy_share") is not None]
        how = (f"their GPUs ran kernels {percent(max(busy))} of forward + backward at most, "
               "by CUDA events"
               if busy else "the device model puts this model at eager PyTorch's launch floor")
        parts.append(f"{_ranks_text(bound)} {'is' if len(bound) == 1 else 'are'} launch-bound: "
                     f"the GPUs wait for their hosts ({how}), so faster GPUs gain little; "
                     "train.compile=true or a larger micro-batch moves the work onto the GPU.")
    return " ".join(parts) or None


def _ranks_text(rows: list[dict]) -> str:
    ranks = [str(r["rank"]) for r in rows]
    return ("Rank " if len(ranks) == 1 else "Ranks ") + ", ".join(ranks)


def sentences(run: Run, analysis: dict) -> list[str]:
    lines = [s for s in (status_sentence(run, analysis),) if s]
    lines += [headline(run, analysis), *rank_sentences(run, analysis)]
    lines += [s for s in (mfu_sentence(run),) if s]
    lines += [s for s in (top_k_sentence(analysis), network_sentence(analysis)) if s]
    return lines + transient_sentences(run, analysis)
