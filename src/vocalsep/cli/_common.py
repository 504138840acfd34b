"""What the ``vocalsep`` command modules share: the SIGTERM handling, the logging set-up, the argument
types (each error names the option through argparse: ``argument --rate: must be ...``) and the
separation options of ``separate`` and ``evaluate``.

Imports nothing heavy: ``vocalsep --help`` must not load PyTorch or NumPy.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..config import COMBINE_RULES, FULLBAND_RULES, PAD_RULES, PRECISIONS
from ..stems import STEMS

DEVICES = ("cpu", "cuda")


# -- SIGTERM, handled like Ctrl-C

class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: what is being written is discarded (exit code 143)."""


SIGNALLED = {"terminated": False}


def terminate(signum, frame):
    if SIGNALLED["terminated"]:  # once: a second SIGTERM must not cut the clean-up short
        return
    SIGNALLED["terminated"] = True
    raise Terminated()


def configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="vocalsep: %(message)s", stream=sys.stderr)


# -- argument types: argparse prefixes each message with "argument OPTION:", so none repeats an option name

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


# -- the separation options of separate and evaluate

def add_separation_options(parser: argparse.ArgumentParser, *, systems: bool = False) -> None:
    """--fullband, --combine, --pad, --shifts, --precision and --device, with the choices of vocalsep.config.

    Each default ``None`` leaves the choice to the model's preset (or the separator's default).  ``systems``
    (evaluate) adds which systems each option changes: the model systems, and for --fullband and --shifts the oracle."""
    note = " (for the model systems)" if systems else ""
    both = " (for the model systems and the oracle)" if systems else ""
    parser.add_argument("--fullband", choices=FULLBAND_RULES, default=None,
                        help="how full-band stems are formed from the model's masks of its modelled band: interpolate the masks onto "
                        "the input's own STFT, or bandlimited, invert at the model's rate and resample" + both + " (default: the "
                        "model's preset's: interpolate for jansson2017, bandlimited for jansson2017-hop384 and the spleeter presets)")
    parser.add_argument("--combine", choices=COMBINE_RULES, default=None,
                        help="how a vocal and an accompaniment model's masks are combined" + note +
                        " (default: the model's preset's; average for jansson2017)")
    parser.add_argument("--pad", choices=PAD_RULES, default=None,
                        help="how a segment shorter than the network's input is padded: wrap repeats it from its start" + note +
                        " (the only rule, the default)")
    parser.add_argument("--shifts", type=shifts, default=None, metavar="N",
                        help="separate each segment N times, delayed by 1/N of the model's hop each time, and average the stems "
                        "(N times the network work); with N > 1 the full-band rule is bandlimited unless --fullband says otherwise"
                        + both + " (default: 1)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="number format of the networks: bf16 is faster on CPUs with bfloat16 instructions and changes the stems "
                        "slightly; auto: bf16 where the CPU has them" + note + " (default: the model's preset's: fp32 for "
                        "jansson2017, auto for spleeter)")
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="where the network runs" + note + " (default: cpu)")
