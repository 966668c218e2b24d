"""Typed, validated reads of Scrapy settings: a bad value fails at start-up naming the setting.

Scrapy's own ``getint``/``getfloat`` raise a bare ``ValueError`` that does not say which setting was
wrong; every component here reads its settings through these helpers instead. Each component passes
its own documented default, so it also works in a project that does not copy our settings module.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from scrapy.settings import BaseSettings


class InvalidSetting(ValueError):
    """A setting has a value the component cannot use. The message names the setting."""

    def __init__(self, name: str, value: Any, expected: str) -> None:
        super().__init__(f"Invalid setting {name}={value!r}: expected {expected}")
        self.setting = name


class CannotStart(RuntimeError):
    """The crawl cannot start for a reason outside its settings (Redis unreachable, a dead run's
    leftovers): the message says what to do."""


class InvalidArgument(ValueError):
    """A spider argument (``-a name=value``) has a value the spider cannot use."""

    def __init__(self, name: str, value: Any, expected: str) -> None:
        super().__init__(f"Invalid spider argument {name}={value!r}: expected {expected}")
        self.argument = name


def get_int(settings: BaseSettings, name: str, default: int, *, minimum: int | None = None,
            maximum: int | None = None) -> int:
    raw = settings.get(name, default)
    try:
        value = int(raw)
        if isinstance(raw, float) and raw != value:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidSetting(name, raw, _range("an integer", minimum, maximum)) from None
    _check_range(name, raw, value, "an integer", minimum, maximum)
    return value


def get_float(settings: BaseSettings, name: str, default: float, *,
              minimum: float | None = None, maximum: float | None = None) -> float:
    raw = settings.get(name, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidSetting(name, raw, _range("a number", minimum, maximum)) from None
    if value != value:  # NaN
        raise InvalidSetting(name, raw, _range("a number", minimum, maximum))
    _check_range(name, raw, value, "a number", minimum, maximum)
    return value


def get_bool(settings: BaseSettings, name: str, default: bool) -> bool:
    try:
        return settings.getbool(name, default)
    except ValueError:
        raise InvalidSetting(name, settings.get(name), "a boolean (True/False, 1/0)") from None


def get_choice(settings: BaseSettings, name: str, default: str, choices: Collection[str]) -> str:
    raw = settings.get(name, default)
    value = str(raw).strip().lower() if raw is not None else ""
    if value not in choices:
        raise InvalidSetting(name, raw, "one of " + ", ".join(sorted(choices)))
    return value


def get_status_codes(settings: BaseSettings, name: str, default: list[int]) -> frozenset[int]:
    raw = settings.getlist(name, default)
    try:
        codes = frozenset(int(code) for code in raw)
    except (TypeError, ValueError):
        raise InvalidSetting(name, raw, "a list of HTTP status codes") from None
    if any(not 100 <= code <= 599 for code in codes):
        raise InvalidSetting(name, raw, "HTTP status codes between 100 and 599")
    return codes


def _range(kind: str, minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{kind} from {minimum} to {maximum}"
    if minimum is not None:
        return f"{kind} >= {minimum}"
    if maximum is not None:
        return f"{kind} <= {maximum}"
    return kind


def _check_range(name: str, raw: Any, value: float, kind: str, minimum: float | None,
                 maximum: float | None) -> None:
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise InvalidSetting(name, raw, _range(kind, minimum, maximum))


def split_list(value: str | Iterable[str] | None, *, on_spaces: bool = True) -> list[str]:
    """A list setting given as a list, or as a string with commas, newlines or (``on_spaces``)
    spaces (``-s``, Scrapyd's ``setting=`` and environment variables can only pass strings)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.replace(",", "\n").split() if on_spaces else value.replace("\n", ",").split(",")
    return [item.strip() for item in value if item and item.strip()]
