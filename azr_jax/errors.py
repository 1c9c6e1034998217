"""The one exception type for bad user input.

`azr-jax` prints a `UsageError` as one line on stderr and exits with status 2, before any
expensive start-up; its message names the fix. Other errors keep status 1.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A command line, config value, path or run directory the user has to change."""
