"""Weights & Biases sink (rank 0 only), behind bench.sinks.NullLogger's interface.

Per log window: cluster numbers under `cluster/...` and per-rank series under `rank_<k>/...`, at
step = the window's last step. At the end: a per-rank table, the summary in run.summary and the
report's plots as images. Files live in <run_dir>/wandb/ (offline runs: `wandb sync` them later).
`wandb` is imported here only, when a run asks for it: it is slow to import.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from bench import config as config_mod
from bench import metrics


def wandb_id(run_id: str) -> str:
    """W&B run ids may not hold / \\ # ? % : and stay short; keep letters, digits, - and _."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", run_id).strip("-")[:64] or "run"


def window_metrics(window: list[dict], ranks: list[dict]) -> dict:
    """What one window logs. Timings are medians over the window's measured steps (the same
    formulas as summary.json, via bench.metrics.summarize); a window of warmup steps only uses
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
        self.run = wandb.init(
            project=cfg.logger.wandb.project, entity=cfg.logger.wandb.entity,
            group=cfg.logger.wandb.group, name=run_id, id=wandb_id(run_id), mode=mode,
            dir=str(self.run_dir), config=config, job_type="train",
            settings=wandb.Settings(
                silent=True,            # no banners between the progress lines
                console="off",          # leave stdout alone: the progress line redraws in place
                x_disable_stats=True,   # no system sampling thread competing with the ranks
            ))

    def log_window(self, step: int, window_records: list[dict], ranks: list[dict]) -> None:
        self.run.log(window_metrics(window_records, ranks), step=step)
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
        for png in self._plots():
            extra[f"plots/{png.stem}"] = self.wandb.Image(str(png))
        if extra:
            self.run.log(extra, step=self.last_step)  # joins the last window's row
        self.run.summary.update(flatten({k: v for k, v in summary.items() if k != "ranks"}))

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
