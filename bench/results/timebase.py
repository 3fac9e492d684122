"""Device time and host time.

An emulated run is time-dilated: everything the emulated cluster sees (paced compute, link
delays, slow faults) is stretched by one factor D = `time_scale`, so that this machine can keep
up. Rank logs keep host time (what the clocks read); every number shown to a user is device time,
host ms / D. A run that does not emulate (real GPUs, or `emulation.time=host`) has D = 1 and
reads wall time.
"""
from __future__ import annotations

DEVICE, WALL = "device", "wall"


def is_time_key(key: str) -> bool:
    return key.endswith("_ms") or key.endswith("_s")


def to_device(records, scale: float) -> list[dict]:
    """Copies of host-time records with every time (`*_ms`, `*_s`) divided by the record's own
    `time_scale` (the D it ran at: D can rise mid-run, bench.emulate.lag), else by `scale`
    (records written before records carried their D)."""
    return [_one(r, r.get("time_scale") or scale) for r in records]


def _one(rec: dict, scale: float) -> dict:
    if scale == 1.0:
        return dict(rec)
    return {k: (v / scale if is_time_key(k) and isinstance(v, (int, float))
                and not isinstance(v, bool) else v) for k, v in rec.items()}


def scale_of(doc: dict) -> float:
    """time_scale from a summary.json or metadata.json (1.0 for runs made before device time)."""
    if doc.get("time_scale") is not None:
        return float(doc["time_scale"])
    return float((doc.get("emulation") or {}).get("time_scale") or 1.0)


def base_of(doc: dict) -> str:
    if doc.get("time_base"):
        return doc["time_base"]
    return (doc.get("emulation") or {}).get("time_base") or WALL
