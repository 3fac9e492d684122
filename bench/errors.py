"""Errors every layer may raise, and the exit codes the CLI maps them to."""
from __future__ import annotations

from typing import Any

EXIT_BAD_INPUT = 2  # a ConfigError: nothing was started


class ConfigError(ValueError):
    """Bad user input. The message names the key, the value and the fix."""

    def __init__(self, key: str, value: Any, fix: str):
        super().__init__(f"{key}={value!r}: {fix}")
        self.key, self.value, self.fix = key, value, fix
