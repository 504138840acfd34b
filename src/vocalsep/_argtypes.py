"""Argument types shared by the command lines of the web apps (``vocalsep listen``, ``vocalsep web``):
each turns a command-line word into a value or raises :class:`argparse.ArgumentTypeError` with one
clear line."""

from __future__ import annotations

import argparse


def count(text: str) -> int:
    """A whole number of at least 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return v


def port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free one)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} must be a port from 0 to 65535")
    return v
