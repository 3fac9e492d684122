"""hetbench: benchmark data-parallel training on heterogeneous GPU clusters."""
__version__ = "0.1.0"
