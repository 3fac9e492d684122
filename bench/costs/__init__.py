"""Pure cost models (no torch.distributed, no processes): device time per step (`devices`) and
link costs (`links`). The emulator, and later the predictor and the collective benchmark, import
these; the formulas live here once."""
