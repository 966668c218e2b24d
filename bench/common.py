"""Shared benchmark plumbing: alternating repeated runs, medians, a printed table, a JSON file."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def alternate(variants: dict[str, Callable[[], dict[str, float]]], repeats: int) -> dict[str, dict[str, float]]:
    """Run every variant once per round, ``repeats`` rounds (so drift hits all alike), each round
    starting one variant later (so no variant always runs first, or always after the same one);
    medians."""
    return medians(alternate_runs(variants, repeats))


def alternate_runs(variants: dict[str, Callable[[], dict[str, float]]],
                   repeats: int) -> dict[str, list[dict[str, float]]]:
    """:func:`alternate`'s runs, round by round (for ratios paired within a round)."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            runs[name].append(variants[name]())
    return runs


def medians(runs: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {name: {key: statistics.median(r[key] for r in results) for key in results[0]}
            for name, results in runs.items()}


def machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}


def report(name: str, title: str, rows: list[dict[str, Any]], notes: dict[str, Any]) -> None:
    """Print ``rows`` as a table and save everything to ``bench/results/<name>.json``."""
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in columns}
    print(f"\n{title}  ({machine()['cores']} cores, Python {machine()['python']})")
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(_fmt(row[c]).ljust(widths[c]) for c in columns))
    for key, value in notes.items():
        print(f"{key}: {_fmt(value)}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(
        {"title": title, "machine": machine(), "rows": rows, "notes": notes}, indent=2, default=str))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)
