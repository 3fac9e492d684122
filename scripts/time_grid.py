"""Time hetbench's GPT on this GPU over a grid of model sizes, batches and precisions, and write
the rows in bench.costs.device_grid's format: the evidence the device model is checked against.

    python scripts/time_grid.py --out grid.json [--quick] [--device cuda|cpu]

One process, no DDP, TF32 off: per configuration, `--warmup` untimed steps, then `--steps`
timed ones, forward, backward and optimizer (fused AdamW, as hetbench) each between CUDA events,
one synchronization per step; medians. On CPU (a smoke test of the script) perf_counter times
the phases. Each row also records `n_runs` and the spread (min, max) of its steps.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = [(4, 4, 128), (8, 8, 512), (12, 12, 768)]  # (n_layer, n_head, n_embd)
SHAPES = [(2, 64), (16, 256), (32, 512), (64, 1024)]  # (micro_batch, seq_len)
PRECISIONS = ["fp32", "bf16"]
VOCAB = 256


def grid(quick: bool) -> list[tuple]:
    if quick:
        return [((4, 4, 128), (2, 64), "fp32")]
    return [(m, s, p) for m, s, p in itertools.product(MODELS, SHAPES, PRECISIONS)
            if not (m[2] == 768 and s[0] * s[1] > 32 * 512 and p == "fp32")]  # minutes each


def time_config(model_dims, shape, precision: str, device: str, steps: int, warmup: int) -> dict:
    import torch

    from bench.rank.model import GPT
    from bench.rank.trainer import make_optimizer

    (layers, heads, embd), (batch, seq) = model_dims, shape
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model = GPT(VOCAB, seq, layers, heads, embd).to(device)
    opt = make_optimizer(model.parameters(), 3e-4)
    data = torch.randint(0, VOCAB, (batch, seq + 1), device=device)
    autocast = torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16" \
        else contextlib.nullcontext()
    rows = [_step(model, opt, data, autocast, device) for _ in range(warmup + steps)][warmup:]
    del model, opt
    if device == "cuda":
        torch.cuda.empty_cache()
    med = {k: round(statistics.median(r[k] for r in rows), 4) for k in rows[0]}
    return {"model": {"n_layer": layers, "n_head": heads, "n_embd": embd, "vocab": VOCAB},
            "micro_batch": batch, "seq_len": seq, "precision": precision, **med,
            "n_runs": len(rows), "compute_ms_range": [round(min(r["fwd_ms"] + r["bwd_ms"] for r in rows), 4),
                                                      round(max(r["fwd_ms"] + r["bwd_ms"] for r in rows), 4)]}


def _step(model, opt, data, autocast, device: str) -> dict:
    import torch

    marks = _Marks(device)
    marks.mark()
    with autocast:
        loss = model(data[:, :-1], data[:, 1:])
    marks.mark()
    loss.backward()
    marks.mark()
    opt.step()
    opt.zero_grad(set_to_none=True)
    marks.mark()
    if device == "cuda":
        torch.cuda.synchronize()
    fwd, bwd, opt_ms = marks.intervals()
    return {"fwd_ms": fwd, "bwd_ms": bwd, "opt_ms": opt_ms}


class _Marks:
    """CUDA events on a GPU (read after the step's one sync), perf_counter on CPU."""

    def __init__(self, device: str):
        self.device, self.points = device, []

    def mark(self) -> None:
        if self.device == "cuda":
            import torch

            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.points.append(event)
        else:
            self.points.append(time.perf_counter())

    def intervals(self) -> list[float]:
        pairs = zip(self.points, self.points[1:])
        if self.device == "cuda":
            return [a.elapsed_time(b) for a, b in pairs]
        return [(b - a) * 1000 for a, b in pairs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="one tiny configuration")
    args = ap.parse_args()
    import torch

    from bench import hardware

    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    rows = []
    for dims, shape, precision in grid(args.quick):
        rows.append(time_config(dims, shape, precision, args.device, args.steps, args.warmup))
        r = rows[-1]
        print(f"{dims[0]}x{dims[2]} {shape[0]}x{shape[1]} {precision}: fwd {r['fwd_ms']:.2f} "
              f"bwd {r['bwd_ms']:.2f} opt {r['opt_ms']:.2f} ms", flush=True)
        doc = {"device": hardware.match_driver_name(name) or name,
               "source": f"scripts/time_grid.py on {name}, torch {torch.__version__}, "
                         f"{time.strftime('%Y-%m-%d')}, TF32 off, medians of {args.steps} steps",
               "rows": rows}
        args.out.write_text(json.dumps(doc, indent=1))  # after every row: a crash keeps the rest
    return 0


if __name__ == "__main__":
    sys.exit(main())
