"""Where dlmpo keeps converted models and the call cache."""

import os
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("DLMPO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "dlmpo"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
