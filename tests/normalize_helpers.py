"""Normaliser functions for tests (module level, so worker processes can import them)."""

from __future__ import annotations

import os
from typing import Any


def upper(record: dict[str, Any]) -> dict[str, Any]:
    if record.get("poison"):
        raise ValueError(f"poisoned record {record['n']}")
    if record.get("crash"):
        os._exit(13)  # kills the worker: BrokenProcessPool in the parent
    return {"text": str(record["text"]).upper(), "pid": os.getpid()}
