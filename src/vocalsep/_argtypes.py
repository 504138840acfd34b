"""Argument types of every command line (``vocalsep`` and its sub-commands, ``vocalsep listen``,
``vocalsep web``): each turns a command-line word into a value or raises
:class:`argparse.ArgumentTypeError` with one line.  argparse prefixes the line with ``argument
OPTION:``, so none repeats an option's name."""

from __future__ import annotations

import argparse

from .stems import STEMS


def whole_number(low: int, high: int | None = None, what: str = "a whole number"):
    """An argument type: a whole number from ``low`` (to ``high``), else "must be WHAT from LOW to HIGH, not 'TEXT'"."""
    span = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or v < low or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"must be {what} {span}, not {text!r}")
        return v

    parse.__name__ = f"whole_number_{low}_{high}"
    return parse


count = whole_number(1)  # --jobs, --threads, --limit
shifts = whole_number(1, 16)
wiener = whole_number(0, 10, "a whole number of EM iterations")
rate = whole_number(1000, None, "a sample rate in Hz")  # evaluation.run.EvalConfig's lowest


def _seconds(text: str, ok, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not ok(v) or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be {what} number of seconds, not {text!r}")
    return v


def nonneg_seconds(text: str) -> float:
    return _seconds(text, lambda v: v >= 0, "a non-negative")


def positive_seconds(text: str) -> float:
    return _seconds(text, lambda v: v > 0, "a positive")


def score100(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0 < v <= 100:
        raise argparse.ArgumentTypeError(f"must be a similarity in (0, 100], not {text!r}")
    return v


def wiener_power(text: str) -> float:
    from .config import MAX_WIENER_POWER, valid_wiener_power

    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not valid_wiener_power(v):
        raise argparse.ArgumentTypeError(f"must be a power in (0, {MAX_WIENER_POWER:g}], not {text!r}")
    return v


def names(text: str) -> tuple[str, ...]:
    found = tuple(x.strip() for x in text.split(",") if x.strip())
    if not found:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, not {text!r}")
    return found


def stems(text: str) -> list[str]:
    found = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in found if s not in STEMS]
    if bad or not found:
        raise argparse.ArgumentTypeError(f"unknown stem(s) {bad or text!r}; choose from {', '.join(STEMS)}")
    return found

count0 = whole_number(0)  # listen prepare --controls
port = whole_number(0, 65535, "a port number")  # 0: any free one


def excerpt_seconds(text: str) -> float:
    """Seconds of a listening-test excerpt: 1 to 120."""
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 1.0 <= v <= 120.0:
        raise argparse.ArgumentTypeError(f"must be from 1 to 120 seconds, not {text!r}")
    return v
