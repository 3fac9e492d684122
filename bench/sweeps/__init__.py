"""`hetbench run -m`: plan (expand and validate every point), timescale (one D for the sweep),
table (sweep.json / sweep.csv), multirun (Hydra's own multirun, driven), job (one point as
Hydra's task function, the table's callback), slurm (one node of a Slurm job)."""
