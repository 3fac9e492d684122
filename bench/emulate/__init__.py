"""Emulation of a device mix (compute pacing) and of slow links (delay injection).
The trainer sees only a Pacer and a Link; everything emulation-specific lives here."""
from __future__ import annotations

from bench.trainer import NoLink, NoPacing


def build(cfg, env):
    return NoPacing(), NoLink()


def calibrate(pacer, trainer, cfg) -> None:
    return None


def summary_section(records, ranks, pacer, link) -> dict:
    return {**pacer.describe(), **link.describe()}


def warnings(summary: dict) -> list[str]:
    return []
