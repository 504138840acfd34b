"""Where stems are written: the ``--filename`` template, and which files are vocalsep's outputs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


from ..audio import OUTPUT_FORMATS, track_name
from ..errors import OutputError
from ..stems import STEMS

import re


DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
TEMPLATE_FIELDS = ("track", "stem", "ext")


def template_fields(template: str) -> list[tuple[str, str | None]]:
    """``(literal text, field or None)`` pieces of an output template; refuses anything but the
    plain fields ``{track}``, ``{stem}`` and ``{ext}`` (no attributes, indices, conversions or specs)."""
    import string

    def bad(why: str) -> OutputError:
        return OutputError(f"invalid --filename template {template!r}: {why}; use {{track}}, {{stem}} and {{ext}}")

    try:
        pieces = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise bad(str(exc)) from None
    out = []
    for literal, field, spec, conversion in pieces:
        if field is not None and (field not in TEMPLATE_FIELDS or spec or conversion):
            raise bad(f"{{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} is not one of its fields")
        out.append((literal, field))
    return out


def output_paths(path: str | os.PathLike, outdir: str | os.PathLike, stems: Sequence[str], fmt: str, template: str = DEFAULT_TEMPLATE) -> dict[str, Path]:
    """Where each stem of ``path`` goes; refuses a template (or a track name) that leads outside ``outdir``,
    and a path through a symbolic link below ``outdir``."""
    pieces = template_fields(template)
    outdir_abs = Path(outdir).resolve()
    track = track_name(path)
    result = {}
    for s in stems:
        values = {"track": track, "stem": s, "ext": fmt}
        rel = "".join(literal + (values[field] if field else "") for literal, field in pieces)
        target = Path(os.path.normpath(outdir_abs / rel))
        if target == outdir_abs or outdir_abs not in target.parents:
            if track != "track":
                output_paths("track", outdir, [s], fmt, template)  # raises when the template itself leads outside
                raise OutputError(f"{path}: its name {track!r} makes the output {target}, outside the output folder {outdir_abs}")
            raise OutputError(f"--filename template {template!r} makes {target}, outside the output folder {outdir_abs}")
        link = next((d for d in (target, *target.parents) if d != outdir_abs and outdir_abs in d.parents and d.is_symlink()), None)
        if link is not None:
            raise OutputError(f"{link}: is a symbolic link; outputs are not written through links (remove it)")
        result[s] = target
    if len(set(result.values())) != len(result):
        raise OutputError(f"--filename template {template!r} gives several stems the same file; include {{stem}}")
    return result


def is_output(path: str | os.PathLike, outdir: str | os.PathLike, template: str = DEFAULT_TEMPLATE) -> bool:
    """Whether ``path`` lies in ``outdir`` where ``template`` puts a stem (of any track, stem and format):
    a file vocalsep may have written, never an input."""

    try:
        rel = Path(path).resolve().relative_to(Path(outdir).resolve())
    except ValueError:
        return False
    choices = {"track": r"[^/]*", "stem": "|".join(STEMS), "ext": "|".join(OUTPUT_FORMATS)}
    pattern = "".join(re.escape(literal) + (f"(?:{choices[field]})" if field else "") for literal, field in template_fields(template))
    return re.fullmatch(pattern, rel.as_posix()) is not None
