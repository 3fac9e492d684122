"""Load a run directory (docs/design.md, 'The run directory') into one object the analysis modules share."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from bench.results import files, metrics, ranklog, timebase

DEFAULT_THRESHOLD = 0.75


class NotARunDir(ValueError):
    """The path is not a run directory; the message says what is missing."""


@dataclass
class Run:
    path: Path
    config: dict
    metadata: dict
    summary: dict
    records: list[dict]
    """Step records in the run's time base: device ms for an emulated run (host ms / D)."""
    world_size: int
    steps: dict = field(default_factory=dict)
    """{step: [record per rank, by rank]}: measured steps that every rank recorded (steps in
    which the host lagged left out, unless the run kept them: emulation.lagged_steps)."""
    all_steps: dict = field(default_factory=dict)
    """The same, warmup and lagged steps included (for the loss curve and the timeline)."""
    notes: list = field(default_factory=list)
    """What reading skipped (a rank log's cut-off last record), to say once."""

    @property
    def threshold(self) -> float:
        value = self.config.get("straggler_threshold")
        return DEFAULT_THRESHOLD if value is None else float(value)

    @property
    def ranks(self) -> list[dict]:
        """One entry per rank: {rank, site, device, emulated_device, speed} (metadata first)."""
        return rank_table(self.metadata, self.summary, self.world_size)

    @property
    def targets(self) -> list:
        """Each rank's compute target in the records' time base, as the run used it (summary's
        emulation.pacing), else from the device times when the records are in device time."""
        pacing = (self.summary.get("emulation") or {}).get("pacing") or []
        if len(pacing) == self.world_size:
            return [row.get("target_compute_ms") for row in pacing]
        if self.time_base == "device":
            return metrics.pacing_targets(self.ranks)
        return [None] * self.world_size

    def label(self, rank: int) -> str:
        """'rank 3 (A100-80GB, site b)': the device the rank stands for, else the real one."""
        info = self.ranks[rank]
        device = info["emulated_device"] or info["configured_device"] or info["device"]
        return f"rank {rank} ({device}, site {info['site']})"

    @property
    def time_base(self) -> str:
        """'device' (records shown in emulated device ms) or 'wall'."""
        return timebase.base_of(self.summary or self.metadata)

    @property
    def ms(self) -> str:
        """The unit of every time shown: 'device ms' for an emulated run, else 'ms'."""
        return "device ms" if self.time_base == "device" else "ms"

    @property
    def time_scale(self) -> float:
        return timebase.scale_of(self.summary or self.metadata)

    @property
    def entropy_floor(self) -> Optional[float]:
        value = self.summary.get("entropy_floor", self.metadata.get("entropy_floor"))
        return None if value is None else float(value)


def rank_table(metadata: dict, summary: dict, world_size: int) -> list[dict]:
    """One entry per rank: {rank, site, device, emulated_device, configured_device, speed,
    device_times}, from metadata.json's ranks, else summary.json's."""
    meta = {int(r["rank"]): r for r in metadata.get("ranks") or []}
    rows = {int(r["rank"]): r for r in (summary or {}).get("ranks") or []}
    out = []
    for r in range(world_size):
        info = {**rows.get(r, {}), **meta.get(r, {})}
        out.append({"rank": r, "site": str(info.get("site", "?")),
                    "device": info.get("device") or info.get("configured_device") or "unknown",
                    "emulated_device": info.get("emulated_device"),
                    "configured_device": info.get("configured_device"),
                    "speed": info.get("speed"), "device_times": info.get("device_times")})
    return out


def for_statistics(records: list[dict], config: dict) -> list[dict]:
    """The records the summary's statistics use: steps in which some host lagged are left out
    (the host's lag, not the cluster's) unless the run kept them (emulation.lagged_steps)."""
    if ((config.get("emulation") or {}).get("lagged_steps") or "exclude") == "exclude":
        return [r for r in records if not r.get("lagged")]
    return records


def device_records(path: Path, metadata: dict, summary: Optional[dict] = None,
                   notes: Optional[list] = None) -> list[dict]:
    """Every rank's step records in the run's time base: the rank logs hold host time, and an
    emulated run's D (each record's time_scale; for older runs summary.json's, else
    metadata.json's) divides every time. `notes` collects what reading had to skip."""
    scale = timebase.scale_of(summary) if summary else timebase.scale_of(metadata)
    return timebase.to_device(ranklog.read_rank_logs(path, notes), scale)


def load(path) -> Run:
    """Read config.yaml, metadata.json, ranks/*.jsonl and summary.json; NotARunDir if absent."""
    path = check(path)
    config, metadata, summary = read_documents(path)
    notes: list[str] = []
    try:
        records = [r for r in device_records(path, metadata, summary, notes)
                   if r.get("wait_ms") is not None]
    except ranklog.CorruptLog as err:
        raise NotARunDir(str(err)) from None
    if not records:
        raise NotARunDir(f"{path}: ranks/*.jsonl hold no attributed step records")
    world = int(metadata.get("world_size") or summary.get("world_size")
                or 1 + max(r["rank"] for r in records))
    run = Run(path, config, metadata, summary, records, world, notes=notes)
    run.steps = metrics.complete_steps(for_statistics(records, config), world, measured_only=True)
    run.all_steps = metrics.complete_steps(records, world, measured_only=False)
    if not run.steps:
        raise NotARunDir(f"{path}: no measured (non-warmup) step was recorded by all "
                         f"{world} ranks; run more steps than train.warmup_steps")
    return run


def check(path) -> Path:
    """The path as a run directory, or NotARunDir saying what is missing and what to give."""
    path = Path(path)
    if not path.is_dir():
        raise NotARunDir(f"{path}: no such directory (give a run directory, runs/<run_id>, "
                         "that `hetbench run` made)")
    if (path / "sweep.json").exists():
        raise NotARunDir(f"{path} is a sweep directory: give one of its points, "
                         f"{path}/<point>")
    missing = [name for name in ("config.yaml", "metadata.json", "ranks")
               if not (path / name).exists()]
    if missing:
        raise NotARunDir(f"{path} is not a run directory: missing {', '.join(missing)} "
                         "(give runs/<run_id>, made by `hetbench run`)")
    return path


def read_documents(path: Path) -> tuple[dict, dict, dict]:
    """config.yaml, metadata.json and summary.json ({} until the run has finished)."""
    config = OmegaConf.to_container(OmegaConf.load(path / "config.yaml"), resolve=True)
    metadata = files.read_json(path / "metadata.json")
    summary = files.read_json(path / "summary.json") if (path / "summary.json").exists() else {}
    return config, metadata, summary
