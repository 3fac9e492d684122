"""One rank's life under torchrun: main (the entry's lifecycle), startup (shared with the
collectives worker), run (set-up, loop, close), trainer (one step) and comm_hook, window (the
cross-rank gather), outputs (metadata and summary), model, data, dist, precision, prefetch,
faults, timing, gpu_sleep, boundness, loggers and wandb_logger."""
