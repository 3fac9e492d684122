"""What a run leaves on disk and reads back, and the pure numbers computed from it: files
(atomic writes), ranklog, status, records, timebase, rundir, metrics, mfu, console, figures.
Below every other layer but the leaves (docs/design.md)."""
