"""Weights & Biases sink (rank 0 only), behind bench.rank.loggers.NullLogger's interface.

Per log window: cluster numbers under `cluster/...` and per-rank series under `rank_<k>/...`, at
step = the window's last step, against the `step` axis (define_metric), each with the summaries
that fit it (a step time's min/max/last, a loss's min/last). At the end: one panel per quantity
with every rank's line per measured step (`per_rank/wait_ms`, `per_rank/compute_ms`), a
per-rank table, the summary in run.summary and the report's plots as images. A sweep point's
config also holds its swept keys at the top level (`swept/<key>`), for W&B's grouping and
parallel-coordinates views. Files live in <run_dir>/wandb/ (offline runs: `wandb sync` them
later). `wandb` is imported here only, when a run asks for it: it is slow to import.
"""
from __future__ import annotations

import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from bench import config as config_mod
from bench.costs import cluster
from bench.results import metrics


def wandb_id(run_id: str) -> str:
    """W&B run ids may not hold / \\ # ? % : and stay short; keep letters, digits, - and _."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", run_id).strip("-")[:64] or "run"


def window_metrics(window: list[dict], ranks: list[dict]) -> dict:
    """What one window logs. Timings are medians over the window's measured steps (the same
    formulas as summary.json, via bench.results.metrics.summarize); a window of warmup steps only uses
    those and says so with cluster/warmup = 1. Losses are at the window's last step."""
    measured = [r for r in window if not r["warmup"]]
    warmup = not measured
    used = [dict(r, warmup=False) for r in window] if warmup else measured
    stats = metrics.summarize(used, ranks)
    out = {"cluster/warmup": int(warmup)}
    if stats.get("steps_measured"):
        out.update(_cluster_numbers(stats))
        for row in stats["ranks"]:
            k = row["rank"]
            out.update({f"rank_{k}/compute_ms": row["compute_ms_p50"],
                        f"rank_{k}/wait_ms": row["wait_ms_p50"],
                        f"rank_{k}/transfer_ms": row["transfer_ms_p50"]})
    last = max(r["step"] for r in window)
    losses = {r["rank"]: r["loss"] for r in window if r["step"] == last}
    out.update({f"rank_{k}/loss": loss for k, loss in sorted(losses.items())})
    out["cluster/loss"] = sum(losses.values()) / len(losses)
    return out


def _cluster_numbers(stats: dict) -> dict:
    slowdown = stats["slowdown"]
    return {"cluster/steps": stats["steps_measured"],
            "cluster/step_ms_p50": stats["step_ms"]["p50"],
            "cluster/tokens_per_s": stats["tokens_per_s"],
            "cluster/efficiency": stats["efficiency"],
            "cluster/slowdown_balance": slowdown["balance"],
            "cluster/slowdown_network": slowdown["network"],
            "cluster/slowdown_total": slowdown["total"]}


# Summaries that fit each series: times and slowdowns are read for their worst and their last,
# throughput and efficiency for their best too, losses for their lowest and last.
CLUSTER_SUMMARIES = {"step_ms_p50": "min,max,last", "tokens_per_s": "min,max,last",
                     "efficiency": "min,max,last", "slowdown_balance": "max,last",
                     "slowdown_network": "max,last", "slowdown_total": "max,last",
                     "loss": "min,last"}
RANK_SUMMARIES = {"compute_ms": "min,max,last", "wait_ms": "max,last", "transfer_ms": "max,last",
                  "loss": "min,last"}
# wandb.Settings of every run. x_disable_stats is wandb 0.19's name (older releases refuse it):
# pyproject.toml's floor follows this dict, and tests/test_wandb.py checks it fast.
RUN_SETTINGS = {"silent": True,            # no banners between the progress lines
                "console": "off",          # leave stdout alone: the progress line redraws in place
                "x_disable_stats": True}   # no system sampling thread competing with the ranks
LINE_SERIES = {"wait_ms": "wait for slower ranks per step (ms), every rank",
               "compute_ms": "compute (forward + backward) per step (ms), every rank"}


def swept_config(environ=os.environ) -> dict:
    """`swept/<key>: value` for each key a sweep set on this point (HETBENCH_SWEPT, from
    bench.sweeps.multirun), values typed as YAML reads them (5 -> 5, mixed4 -> "mixed4")."""
    swept = json.loads(environ.get("HETBENCH_SWEPT") or "{}")
    return {f"swept/{key}": yaml.safe_load(value) for key, value in swept.items()}


def step_values(window: list[dict]) -> dict:
    """{quantity: {rank: {step: ms}}} of the window's measured steps, for the line-series panels."""
    out = {name: defaultdict(dict) for name in LINE_SERIES}
    for r in window:
        if not r["warmup"]:
            out["wait_ms"][r["rank"]][r["step"]] = r["wait_ms"]
            out["compute_ms"][r["rank"]][r["step"]] = r["fwd_ms"] + r["bwd_ms"]
    return out


def flatten(doc: dict, prefix: str = "") -> dict:
    """{"step_ms": {"p50": 1}} -> {"step_ms/p50": 1}; lists stay values."""
    flat = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


class WandbLogger:
    def __init__(self, cfg, run_dir: Path, run_id: str, mode: str):
        import wandb  # lazy: see the module docstring

        self.wandb, self.run_dir, self.last_step = wandb, Path(run_dir), None
        config = config_mod.to_container(cfg)
        config["run_id"] = run_id  # ranks get it from the environment, not from the overrides
        config.update(swept_config())
        self.series = {name: defaultdict(dict) for name in LINE_SERIES}
        self.run = wandb.init(
            project=cfg.logger.wandb.project, entity=cfg.logger.wandb.entity,
            group=cfg.logger.wandb.group, name=run_id, id=wandb_id(run_id), mode=mode,
            dir=str(self.run_dir), config=config, job_type="train",
            settings=wandb.Settings(**RUN_SETTINGS))
        self._define_metrics(cluster.world_size(cfg))

    def _define_metrics(self, world: int) -> None:
        self.run.define_metric("step")  # the training step: the x axis of every series
        for name, summary in CLUSTER_SUMMARIES.items():
            self.run.define_metric(f"cluster/{name}", step_metric="step", summary=summary)
        for k in range(world):
            for name, summary in RANK_SUMMARIES.items():
                self.run.define_metric(f"rank_{k}/{name}", step_metric="step", summary=summary)

    def log_window(self, step: int, window_records: list[dict], ranks: list[dict]) -> None:
        self.run.log({"step": step, **window_metrics(window_records, ranks)}, step=step)
        for name, by_rank in step_values(window_records).items():
            for rank, values in by_rank.items():
                self.series[name][rank].update(values)
        self.last_step = step

    def finish(self, summary: dict, ok: bool) -> None:
        """Table, summary and plots; then close the run with its exit code, on every path."""
        try:
            self._log_final(summary)
        finally:
            self.run.finish(exit_code=0 if ok else 1)

    def _log_final(self, summary: dict) -> None:
        extra = {}
        rows = summary.get("ranks") or []
        if rows:
            columns = list(rows[0])
            extra["ranks"] = self.wandb.Table(columns=columns,
                                              data=[[row.get(c) for c in columns] for row in rows])
        extra.update(self._line_series())
        for png in self._plots():
            extra[f"plots/{png.stem}"] = self.wandb.Image(str(png))
        if extra:
            self.run.log(extra, step=self.last_step)  # joins the last window's row
        self.run.summary.update(flatten({k: v for k, v in summary.items() if k != "ranks"}))

    def _line_series(self) -> dict:
        """One panel per quantity, one line per rank over the measured steps."""
        panels = {}
        for name, title in LINE_SERIES.items():
            by_rank = self.series[name]
            if not by_rank:
                continue
            ranks = sorted(by_rank)
            steps = sorted(by_rank[ranks[0]])
            panels[f"per_rank/{name}"] = self.wandb.plot.line_series(
                xs=steps, ys=[[by_rank[k].get(s) for s in steps] for k in ranks],
                keys=[f"rank {k}" for k in ranks], title=title, xname="step")
        return panels

    def _plots(self) -> list[Path]:
        try:
            from bench.analysis.report import build_report
        except ImportError:  # the report module is optional: without it, no images
            build_report = None
        if build_report is not None:
            try:
                build_report(self.run_dir)
            except Exception as err:  # noqa: BLE001 - plots must not cost the run its W&B record
                print(f"warning: W&B: report plots failed: {type(err).__name__}: {err}",
                      file=sys.stderr, flush=True)
        return sorted((self.run_dir / "plots").glob("*.png"))
