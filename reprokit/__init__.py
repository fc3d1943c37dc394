"""reprokit: executable bug write-ups (reproduce, capture, publish)."""

from __future__ import annotations

__version__ = "0.1.0"
