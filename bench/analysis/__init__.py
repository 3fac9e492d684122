"""Analysis of a finished run directory: stragglers, transients, what-if replay, plots, the HTML
report and a Chrome/Perfetto trace. Reads only run directories, never live processes.
docs/report.md defines every number."""
