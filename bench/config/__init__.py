"""Configuration: the schema (schema.py), Hydra compose (compose.py) and the checks that name
the key, the value and the fix before any process starts (validation.py, checks.py)."""
from bench.config.compose import compose, compose_hydra, config_dir, to_container
from bench.config.schema import STRATEGIES, GroupConfig, HetbenchConfig, register_schema
from bench.config.validation import validate, validate_devices
from bench.errors import ConfigError

__all__ = ["compose", "compose_hydra", "config_dir", "to_container", "STRATEGIES", "GroupConfig",
           "HetbenchConfig", "register_schema", "validate", "validate_devices", "ConfigError"]
