#!/usr/bin/env python
"""The paper's preset with finer STFT hops (a probe, not a test).

The jansson2017 preset frames 8192 Hz audio with a 1024-sample window and a
768-sample hop (three quarters of the window).  This registers
``jansson2017-hopH`` presets for H in 192, 256, 384 and 512, the same in every
field but ``hop`` = H and a segment length kept at about 30 s
(``jansson2017-hop384`` is registered in the package, with the
``bandlimited`` full-band rule; the others exist only here), and then either

- runs vocalsep's command line with them known, so that ``train --preset``
  and ``evaluate --preset`` (the ideal mask's STFT) accept them::

      python scripts/probes/hop_presets.py evaluate --preset jansson2017-hop384 --system oracle ...
      python scripts/probes/hop_presets.py train --preset jansson2017-hop384 --init MODEL ...

  (a trained file records its whole preset, so it then runs anywhere,
  ``vocalsep separate -m FILE`` included); or
- writes copies of model files with the preset's hop swapped, weights
  untouched, to run a network at a hop it was not trained on::

      python scripts/probes/hop_presets.py relabel 384 OUTDIR MODEL [MODEL ...]

The figures in docs/training.md, "Round 12", come from these commands.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from vocalsep import config

HOPS = (192, 256, 384, 512)


def preset_for(hop: int) -> config.Preset:
    """The registered ``jansson2017-hopH`` preset, else jansson2017 with that hop."""
    name = f"jansson2017-hop{hop}"
    if name in config.PRESETS:
        return config.PRESETS[name]
    base = config.PRESETS["jansson2017"]
    segment = max(64, round(base.segment_frames * base.hop / hop / 64) * 64)
    return dataclasses.replace(base, name=name, hop=hop, segment_frames=segment)


for _hop in HOPS:
    config.PRESETS[f"jansson2017-hop{_hop}"] = preset_for(_hop)


def relabel(hop: int, outdir: str, models: list[str]) -> None:
    import torch

    from vocalsep.checkpoint import load_checkpoint, save_checkpoint

    Path(outdir).mkdir(parents=True, exist_ok=True)
    for path in models:
        ck = load_checkpoint(path)
        out = Path(outdir) / f"{Path(path).stem}-hop{hop}.safetensors"
        preset = dataclasses.replace(preset_for(hop), unet=ck.preset.unet)
        save_checkpoint(out, ck.model, target=ck.target, preset=preset, training=ck.training, dtype=torch.float16)
        print(out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "relabel":
        if len(sys.argv) < 5:
            sys.exit("usage: hop_presets.py relabel HOP OUTDIR MODEL [MODEL ...]")
        relabel(int(sys.argv[2]), sys.argv[3], sys.argv[4:])
    else:
        from vocalsep.cli import main

        sys.exit(main(sys.argv[1:]))
