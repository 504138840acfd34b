"""What the ``vocalsep`` command modules share: the SIGTERM handling, the logging set-up and the
separation options of ``separate`` and ``evaluate`` (the argument types: :mod:`vocalsep._argtypes`).

Imports nothing heavy: ``vocalsep --help`` must not load PyTorch or NumPy.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .._argtypes import shifts, wiener, wiener_power
from .._signals import raise_or_defer
from ..config import COMBINE_RULES, FULLBAND_RULES, PAD_RULES, PRECISIONS, SPLEETER_RATIO

DEVICES = ("cpu", "cuda")


# -- SIGTERM, handled like Ctrl-C

class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: what is being written is discarded (exit code 143)."""


SIGNALLED = {"terminated": False}


def terminate(signum, frame):
    if SIGNALLED["terminated"]:  # once: a second SIGTERM must not cut the clean-up short
        return
    SIGNALLED["terminated"] = True
    raise_or_defer(Terminated())


def configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="vocalsep: %(message)s", stream=sys.stderr)


# -- the separation options of separate and evaluate

def add_separation_options(parser: argparse.ArgumentParser, *, systems: bool = False) -> None:
    """--fullband, --combine, --pad, --shifts, --wiener, --wiener-power, --precision and --device, with the choices of vocalsep.config.

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
                        " (default: the model's preset's; average for jansson2017); with the Wiener filter on, only where it does "
                        "not run (mono or dual-mono input)")
    parser.add_argument("--pad", choices=PAD_RULES, default=None,
                        help="how the paper's presets pad a segment shorter than the network's input: wrap repeats it from its start"
                        + note + " (the only rule, the default; the stereo presets cut patches and zero-pad the last)")
    parser.add_argument("--shifts", type=shifts, default=None, metavar="N",
                        help="separate each segment N times, delayed by 1/N of the model's hop each time, and average the stems "
                        "(N times the network work); with N > 1 the full-band rule is bandlimited unless --fullband says otherwise"
                        + both + " (default: 1)")
    parser.add_argument("--wiener", type=wiener, default=None, metavar="N",
                        help="refine the two networks' stems with a multichannel Wiener filter of N EM iterations, as Open-Unmix "
                        "does (with the bandlimited full-band rule); 0: off" + note + " (default: the model's preset's: 1 for "
                        "spleeter-ratio, the default model's, 0 for the others)")
    parser.add_argument("--wiener-power", type=wiener_power, default=None, metavar="P",
                        help="the Wiener filter's first estimates are the networks' masks to the power P times the mixture: "
                        "below 1 they are softer" + note + f" (default: the model's preset's: {SPLEETER_RATIO.wiener_power:g} for spleeter-ratio, 1 for "
                        "the others)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="number format of the networks: bf16 is faster on CPUs with bfloat16 instructions and changes the stems "
                        "slightly; auto: bf16 where the CPU has them" + note + " (default: the model's preset's: fp32 for "
                        "jansson2017, auto for spleeter)")
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="where the network runs" + note + " (default: cpu)")


SEPARATION_FIELDS = ("fullband", "high_band", "complement", "combine", "pad", "shifts", "wiener", "wiener_power", "precision")


def separation_options(args):
    """The :class:`~vocalsep.separation.options.SeparationOptions` of a command's arguments: every
    separation option the command has and the user gave (the rest left to the model's preset)."""
    from ..separation.options import SeparationOptions

    given = {k: v for k in SEPARATION_FIELDS if (v := getattr(args, k, None)) is not None and v is not False}
    return SeparationOptions(**given)


def command_line(args, command: str, skip: tuple[str, ...] = ()) -> str:
    """The command line that reproduces ``args`` (parsed by ``args.parser``): every option whose value
    is not its default, except those in ``skip`` (options that do not change the results)."""
    import shlex

    parts = ["vocalsep", command]
    for action in args.parser._actions:
        if not action.option_strings or action.dest in (*skip, "help", "parser", "func"):
            continue
        value = getattr(args, action.dest, None)
        if value is None or value == action.default:
            continue
        flag = max(action.option_strings, key=len)
        if isinstance(action, argparse._StoreTrueAction):
            parts.append(flag)
        elif isinstance(action, argparse._AppendAction):
            for v in value:
                parts += [flag, str(v)]
        elif isinstance(value, (tuple, list)):
            parts += [flag, ",".join(map(str, value))]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)
