"""Loggers behind one interface: the loop calls log_window / finish whatever is configured.
NullLogger does nothing; bench.rank.wandb_logger is the W&B one (rank 0 only)."""
from __future__ import annotations

import os
from pathlib import Path


class NullLogger:
    """Does nothing: the loop calls the same interface whatever logger is configured."""

    def log_window(self, step: int, window_records: list[dict], ranks: list[dict]) -> None: ...

    def finish(self, summary: dict, ok: bool) -> None: ...


def make_logger(cfg, run_dir: Path, run_id: str):
    mode = os.environ.get("WANDB_MODE", cfg.logger.wandb.mode)
    if mode == "disabled":
        return NullLogger()
    from bench.rank.wandb_logger import WandbLogger  # lazy: wandb is slow to import

    return WandbLogger(cfg, run_dir, run_id, mode)
