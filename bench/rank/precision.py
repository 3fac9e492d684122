"""The precision the ranks compute in (`train.precision`), agreed by the whole fleet.

  auto  bf16 autocast where every rank's device has native bf16 (the catalog says, or for a GPU
        the catalog does not know, compute capability 8.0 or later); else fp16 autocast with a
        gradient scaler where every rank is a GPU; else fp32.
  bf16  autocast to bfloat16 (parameters, gradients and optimizer state stay fp32).
  fp16  autocast to float16 with a dynamic gradient scaler (fp16's range needs one).
  tf32  fp32 tensors; matmuls and convolutions on TF32 tensor cores (Ampere and later).
  fp32  fp32 everywhere, TF32 off.

Every rank must compute in the same precision: mixed precisions across ranks would average
gradients of different arithmetic. So each rank reports what its device can do, and all apply
the same pure rule to the same list (`choose`). CPU ranks always compute in fp32: they emulate
a device, and the device model (bench.costs.device_times) times the configured precision instead.
The TF32 switches are set explicitly, on or off, so that torch's defaults never decide.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Optional

from bench import hardware
from bench.costs.devices import PRECISIONS

CHOICES = ("auto", *PRECISIONS)
AUTOCAST = {"bf16": "bfloat16", "fp16": "float16"}


class PrecisionError(ValueError):
    """A precision some rank's device cannot compute in (the message names the fix)."""


def capability(device_type: str, catalog: Optional[str], compute_capability=None) -> dict:
    """What one rank can compute in: {'gpu': bool, 'bf16': bool, 'tf32': bool}."""
    if device_type != "cuda":
        return {"gpu": False, "bf16": False, "tf32": False}
    spec = hardware.lookup(catalog)
    if spec is not None:
        return {"gpu": True, "bf16": spec.bf16_native, "tf32": spec.tf32_tflops is not None}
    ampere = compute_capability is not None and tuple(compute_capability) >= (8, 0)
    return {"gpu": True, "bf16": ampere, "tf32": ampere}


def choose(requested: str, capabilities: list[dict]) -> str:
    """The one precision every rank computes in, from every rank's capability."""
    if not all(c["gpu"] for c in capabilities):
        return "fp32"  # CPU ranks compute in fp32 whatever is asked (they emulate a device)
    if requested == "auto":
        return "bf16" if all(c["bf16"] for c in capabilities) else "fp16"
    lacking = [r for r, c in enumerate(capabilities) if requested in ("bf16", "tf32") and not c[requested]]
    if lacking:
        raise PrecisionError(f"train.precision={requested!r}: ranks {lacking} have no native "
                             f"{requested}; use train.precision=auto (fp16 with a gradient scaler "
                             "there) or fp32")
    return requested


@dataclass
class Precision:
    """How the step loop computes: autocast around forward, a scaler around backward and step."""
    name: str  # bf16 | fp16 | tf32 | fp32
    device_type: str = "cpu"

    def __post_init__(self):
        self.scaler = None
        if self.name == "fp16" and self.device_type == "cuda":
            import torch

            self.scaler = torch.amp.GradScaler("cuda")

    def autocast(self):
        if self.name not in AUTOCAST or self.device_type != "cuda":
            return contextlib.nullcontext()
        import torch

        return torch.autocast("cuda", dtype=getattr(torch, AUTOCAST[self.name]))

    def backward(self, loss) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, optimizer) -> None:
        """The optimizer step; with a scaler, skipped on inf/nan gradients (no host sync with a
        fused optimizer: the scaler hands it the scale and the found-inf flag on the device)."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()


def set_tf32(precision: str) -> None:
    """TF32 on for tf32, off otherwise: explicit, whatever torch's defaults are."""
    import torch

    on = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def agree(requested: str, device_type: str, catalog: Optional[str], gather) -> str:
    """Every rank's capability through `gather` (an all-gather of objects), one choice for all."""
    cc = None
    if device_type == "cuda" and hardware.lookup(catalog) is None:
        import torch

        cc = torch.cuda.get_device_capability()
    return choose(requested, gather(capability(device_type, catalog, cc)))
