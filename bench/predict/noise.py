"""Stragglers as order statistics. A synchronous step waits for the slowest of W ranks, so any
per-rank variation costs more as W grows: with each rank's compute multiplied by an independent
draw m of a distribution F, the slowest of n ranks has the distribution F^n, and the expected
slowest hand-over over classes c of n_c ranks is

    E[max_c,r (start_c + span_c * m_r)] = lo + integral_lo^hi (1 - prod_c F((x - start_c) / span_c)^n_c) dx

evaluated on a grid (vectorised over classes and grid points, so 200,000 ranks cost nothing).

F is one of:
  normal      m = 1 + jitter_pct/100 * Z (per-rank, per-step jitter)
  transient   with probability straggler_rate a rank is slowed by straggler_ms that step
              (both may be combined)
  empirical   the multipliers measured in a run directory: each rank's compute per step over its
              own median (`predict.noise_from`), which carries whatever the real fleet showed
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from bench.errors import ConfigError
from bench.results import files, metrics, rundir

GRID = 2049
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed trapz
SIGMAS = 8.0  # the normal's support on the grid, in standard deviations


@dataclass(frozen=True)
class Noise:
    jitter_pct: float = 0.0
    straggler_rate: float = 0.0
    straggler_ms: float = 0.0
    samples: Optional[np.ndarray] = None  # empirical multipliers, sorted

    @property
    def none(self) -> bool:
        return self.samples is None and self.jitter_pct == 0 and \
            (self.straggler_rate == 0 or self.straggler_ms == 0)

    def mean(self, compute_ms: np.ndarray) -> np.ndarray:
        """E[m] per class (the transient slowdown is in ms, so relative to each class)."""
        base = float(self.samples.mean()) if self.samples is not None else 1.0
        return base + self.straggler_rate * self.straggler_ms / compute_ms

    def cdf(self, m: np.ndarray, compute_ms: np.ndarray) -> np.ndarray:
        """P(multiplier <= m); m has classes along axis 0, compute_ms per class."""
        extra = (self.straggler_ms / compute_ms)[:, None]
        p = self.straggler_rate
        return (1 - p) * self._base_cdf(m) + p * self._base_cdf(m - extra)

    def support(self, compute_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.samples is not None:
            lo, hi = float(self.samples[0]), float(self.samples[-1])
        else:
            sd = self.jitter_pct / 100.0
            lo, hi = 1 - SIGMAS * sd, 1 + SIGMAS * sd
        extra = self.straggler_ms / compute_ms if self.straggler_rate > 0 else 0 * compute_ms
        return lo + 0 * compute_ms, hi + extra

    def _base_cdf(self, m: np.ndarray) -> np.ndarray:
        if self.samples is not None:
            return np.searchsorted(self.samples, m, side="right") / len(self.samples)
        sd = self.jitter_pct / 100.0
        if sd == 0:
            return (m >= 1.0).astype(float)
        return _normal_cdf((m - 1.0) / sd)

    def describe(self) -> dict:
        out = {"straggler_rate": self.straggler_rate, "straggler_ms": self.straggler_ms}
        if self.samples is None:
            out["jitter_pct"] = self.jitter_pct
        else:  # the measured multipliers replace jitter_pct
            out["empirical"] = {"samples": len(self.samples),
                                "p50": float(np.median(self.samples)),
                                "p99": float(np.percentile(self.samples, 99)),
                                "max": float(self.samples[-1])}
        return out


def expected_max(start: np.ndarray, span: np.ndarray, count: np.ndarray, noise: Noise,
                 compute_ms: np.ndarray) -> float:
    """E[slowest hand-over] over every rank (module docstring); exact max without noise."""
    if noise.none:
        return float(np.max(start + span))
    lo_m, hi_m = noise.support(compute_ms)
    lo = float(np.max(start + span * lo_m))  # every rank is at least this late: max of minima
    hi = float(np.max(start + span * hi_m))
    if hi <= lo:
        return hi
    x = np.linspace(lo, hi, GRID)
    m = (x[None, :] - start[:, None]) / np.maximum(span, 1e-12)[:, None]
    with np.errstate(divide="ignore"):
        log_cdf = np.log(np.clip(noise.cdf(m, compute_ms), 0.0, 1.0))
    below = np.exp(np.sum(count[:, None] * log_cdf, axis=0))  # P(max <= x)
    return lo + float(_trapezoid(1.0 - below, x))


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, and scipy is not a
    dependency."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                        + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def from_run(run_dir) -> np.ndarray:
    """Empirical multipliers of a run: every measured step's compute (forward + backward) of
    every rank over that rank's median, sorted (bench.results.timebase: the run's own time base)."""
    records = rundir.device_records(run_dir, files.read_json(run_dir / "metadata.json"))
    by_rank: dict[int, list[float]] = {}
    for r in records:
        if not r["warmup"]:
            by_rank.setdefault(r["rank"], []).append(metrics.compute_ms(r))
    out = []
    for vals in by_rank.values():
        mid = float(np.median(vals))
        out += [v / mid for v in vals] if mid > 0 else []
    if not out:
        raise ConfigError("predict.noise_from", str(run_dir), "that run has no measured steps "
                          "to take a distribution from; point it at a finished run")
    return np.sort(np.array(out))
