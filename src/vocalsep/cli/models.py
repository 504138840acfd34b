"""``vocalsep info`` (a model's facts) and ``vocalsep models`` (the installed models)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._cli_base import EXIT_OK


def add_models_parsers(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("info", parents=[common], help="print a model's facts", description="Print a model's facts.")
    p.add_argument("model", metavar="MODEL", help="registered model name, model file or folder")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("models", parents=[common], help="list the installed models", description="List the installed models.")
    p.set_defaults(func=cmd_models)


def cmd_info(args) -> int:
    import hashlib
    import json

    from ..checkpoint import load_checkpoint
    from ..model import count_parameters
    from ..models import resolve_model

    name, paths = resolve_model(args.model)
    print(f"model: {name}")
    for path in paths:
        ck = load_checkpoint(path)
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        p = ck.preset
        print(f"\n{path}")
        print(f"  target:        {ck.target}")
        print(f"  preset:        {p.name}: {p.sample_rate} Hz, STFT {p.n_fft}/{p.hop}, {p.bins} bins (0-{p.max_frequency:.0f} Hz), patches of {p.patch_frames} frames")
        power = f" from the masks to the power {p.wiener_power:g}" if p.wiener_power != 1 else ""
        wiener = f", Wiener filter {p.wiener} EM iteration{'s' if p.wiener > 1 else ''}{power}" if p.wiener else ""
        print(f"  separation:    combine {p.combine}, full band {p.fullband}, high band {p.high_band}, precision {p.precision}{wiener}")
        u = p.unet
        print(f"  network:       {'U-Net' if u.skip else 'baseline encoder-decoder (no skips)'}, channels {list(u.channels)}, kernel {u.kernel_size}, stride {u.stride}, input norm {u.input_norm}")
        print(f"  parameters:    {count_parameters(ck.model):,}")
        print(f"  file:          {Path(path).stat().st_size / 1e6:.1f} MB, sha256 {digest}..., written by vocalsep {ck.version}")
        if ck.training:
            print("  training:      " + json.dumps(ck.training, sort_keys=True, indent=None)[:2000])
        else:
            print("  training:      (no training facts recorded)")
    return EXIT_OK


def cmd_models(args) -> int:
    from ..models import DEFAULT_MODEL, available_models
    from ..spleeter.sources import installed_sources

    found = available_models()
    spleeter = installed_sources()
    if not found and not spleeter:
        print("no models are installed in this vocalsep build")
        return EXIT_OK
    for name, files in found.items():
        mark = " (default)" if name == DEFAULT_MODEL else ""
        print(f"{name}{mark}: " + ", ".join(f.name for f in files))
    if spleeter:
        print(f"spleeter:2stems: Spleeter's pretrained 2-stem model, from {spleeter[0][0]} ({spleeter[0][1]})")
    return EXIT_OK
