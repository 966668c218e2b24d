"""Normaliser functions for tests (module level, so worker processes can import them)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def upper(record: dict[str, Any]) -> dict[str, Any]:
    if record.get("poison"):
        raise ValueError(f"poisoned record {record['n']}")
    if record.get("stall"):  # the first run stalls (a stuck worker); a re-run returns at once
        marker = Path(record["stall"])
        if not marker.exists():
            marker.touch()
            time.sleep(600)
    if record.get("log_run"):  # one line per run of this record, then a little work
        with open(record["log_run"], "a") as log:
            log.write(f"{os.getpid()}\n")
        time.sleep(record.get("sleep", 0))
    if record.get("crash"):
        os._exit(13)  # kills the worker
    if record.get("unpicklable_result"):
        return {"text": "x", "callback": lambda: None}
    return {"text": str(record["text"]).upper(), "pid": os.getpid()}


def with_length(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "length": len(str(record["text"]))}


class OnlyHere:
    """Pickles, but cannot be unpickled in another process (like an object of a class defined in the
    ``__main__`` of a crawl script)."""

    def __init__(self) -> None:
        self.pid = os.getpid()

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state["pid"] != os.getpid():
            raise RuntimeError("cannot be rebuilt in another process")
        self.__dict__.update(state)
