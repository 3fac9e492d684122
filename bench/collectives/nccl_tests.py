"""Reading an nccl-tests log (all_reduce_perf and friends, github.com/NVIDIA/nccl-tests).

What the tests print, and what is read of it:

  # Collective test starting: all_reduce_perf        (newer versions; else --op or the file name)
  # nThread 1 nGpus 8 minBytes 8 maxBytes 8589934592 step: 2(factor) warmup iters: 5 iters: 20 ...
  #  Rank  0 Group  0 Pid  4242 on   node-a device  0 [0x07] NVIDIA A100-SXM4-80GB   (one per rank)
  #                                                 out-of-place                 in-place
  #       size         count      type   redop    root     time   algbw   busbw #wrong     time ...
  #        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us) ...
             8             2     float     sum      -1    21.99    0.00    0.00      0    21.55 ...
  # Avg bus bandwidth    : 52.4

A data row's last eight fields are the out-of-place and in-place (time, algbw, busbw, #wrong);
older versions have no root column, which reading from the end does not mind. Ranks are the
"Rank" lines, nodes the distinct hosts they name, devices their GPU names.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench import hardware
from bench.collectives import spec

_RANK = re.compile(r"#\s+Rank\s+(\d+)\s+Group\s+\d+\s+Pid\s+\d+\s+on\s+(\S+)\s+device\s+\d+\s+\[[^\]]*\]\s+(.+?)\s*$")
_TEST = re.compile(r"#\s*Collective test starting:\s*(\w+)_perf")
_OPS = {"all_reduce": "all_reduce", "all_gather": "all_gather", "reduce_scatter": "reduce_scatter",
        "broadcast": "broadcast", "sendrecv": "sendrecv"}


@dataclass
class Log:
    op: str
    ranks: int
    hosts: list  # one per rank, in rank order
    devices: list  # catalog keys (None: unknown), one per rank
    rows: list = field(default_factory=list)  # {"size", "time_us", "busbw", "time_us_in_place"}

    @property
    def nodes(self) -> Counter:
        return Counter(self.hosts)


def parse(text: str, op: str | None = None, name: str = "") -> Log:
    """The log's op, ranks, hosts, devices and rows; ValueError naming what is missing."""
    found_op, ranks = op, {}
    rows = []
    for line in text.splitlines():
        test = _TEST.match(line.strip())
        if test and not found_op:
            found_op = test.group(1)
        rank = _RANK.match(line.rstrip())
        if rank:
            ranks[int(rank.group(1))] = (rank.group(2), hardware.match_driver_name(rank.group(3)))
            continue
        row = _row(line)
        if row:
            rows.append(row)
    found_op = found_op or _op_from_name(name)
    if found_op not in _OPS:
        raise ValueError(f"cannot tell which collective the log times ({found_op or 'no header'});"
                         " pass --op all_reduce (or all_gather, reduce_scatter, broadcast, sendrecv)")
    if not ranks:
        raise ValueError("the log has no '#  Rank N ... on HOST device ...' lines; keep nccl-tests' "
                         "whole output (it prints one per rank)")
    if not rows:
        raise ValueError("the log has no data rows (size count type ... time algbw busbw ...)")
    order = sorted(ranks)
    return Log(_OPS[found_op], len(order), [ranks[r][0] for r in order],
               [ranks[r][1] for r in order], rows)


def _row(line: str) -> dict | None:
    fields = line.split()
    if len(fields) < 10 or line.lstrip().startswith("#") or not fields[0].isdigit():
        return None
    try:
        size = int(fields[0])
        t_out, _, bus_out, _, t_in = (float(x) for x in fields[-8:-3])
    except ValueError:
        return None
    return {"size": size, "time_us": t_out, "busbw": bus_out, "time_us_in_place": t_in}


def _op_from_name(name: str) -> str | None:
    base = Path(name).name
    return next((op for op in spec.OPS if op in base), None)


def read(path, op: str | None = None) -> Log:
    return parse(Path(path).read_text(errors="replace"), op, str(path))
