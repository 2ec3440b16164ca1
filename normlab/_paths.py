"""The user cache root every part of normlab writes under: downloads (``data``) and compiled kernels (``nn.backend``)."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["user_cache"]


def user_cache() -> Path:
    """``$XDG_CACHE_HOME/normlab``, else ``~/.cache/normlab``; read from the environment on every call."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "normlab"
