"""The battery's own helpers (`fault_upstream`) are imported by name, like `fakes`."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
