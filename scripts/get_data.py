#!/usr/bin/env python3
"""Lay out the training data of the full-band models in one folder outside the repository.

    python scripts/get_data.py --out ../data \
        --musdb-repo PATH/TO/skimura1/VocalExractionUnet \
        --ssvd-repo PATH/TO/xk-wang/SSVD-v2.0 \
        --m4singer-repo PATH/TO/M4Singer/M4Singer.github.io \
        [--debs DIR]

Each ``--*-repo`` is a git clone (or a bare git directory) of the public
repository named in docs/data.md; the files are read from the commits given
there with ``git show``, so a clone whose later commits deleted them still
works.  The Debian packages are fetched with ``apt-get download`` into
``--debs`` (default ``OUT/.debs``) unless they are already there, and unpacked
with ``dpkg-deb``; the music inside ``.pk3`` files (zip archives) is extracted.

The result (docs/data.md says what each source is and its license)::

    OUT/musdb/{train,test}/NAME.stem.mp4
    OUT/voices/ssvd/{train-valid,test}/ID.flac
    OUT/voices/m4singer/{SVS-GT,samples,SVC-ref,SVC-addition-ref}/NAME.wav
    OUT/instrumental/{wesnoth,warzone2100,ufoai,nexuiz}/NAME.{ogg,opus}
    OUT/instrumental/fretsonfire/{muldjord,sectoid}/SONG/{song,guitar}.ogg
    OUT/mir1k -> the MIR-1K folder given with --mir1k (a link, not a copy)
    OUT/MANIFEST.json   every file: source, size, SHA-256

A rerun keeps the files that are already in place (checked by size).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MUSDB_COMMIT = "02a669958fda94ed0915cbda1a31f97b57cb2e50"
M4SINGER_FOLDERS = {
    "m4singer/audio/SVS/GT": "SVS-GT",
    "m4singer/audio/samples": "samples",
    "m4singer/audio/SVC/ref": "SVC-ref",
    "m4singer/audio/SVC/addition/ref": "SVC-addition-ref",
}
SSVD_FOLDERS = {"train&valid": "train-valid", "test": "test"}
# Debian package -> (folder under OUT/instrumental, where its music lies inside the package)
DEBS = {
    "wesnoth-1.16-music": ("wesnoth", "usr/share/games/wesnoth/1.16/data/core/music"),
    "warzone2100-music": ("warzone2100", "usr/share/games/warzone2100/music"),
    "ufoai-music": ("ufoai", "usr/share/games/ufoai/base/0music.pk3"),
    "nexuiz-music": ("nexuiz", "usr/share/games/nexuiz/data/music.pk3"),
    "fretsonfire-songs-muldjord": ("fretsonfire/muldjord", "usr/share/games/fretsonfire/data/songs/muldjord"),
    "fretsonfire-songs-sectoid": ("fretsonfire/sectoid", "usr/share/games/fretsonfire/data/songs/sectoid"),
}
MUSIC_EXT = (".ogg", ".opus")


def git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "--git-dir", str(_git_dir(repo)), *args], check=True, capture_output=True).stdout


def _git_dir(repo: Path) -> Path:
    return repo / ".git" if (repo / ".git").exists() else repo


def ls_tree(repo: Path, commit: str, folder: str) -> list[tuple[str, int]]:
    """(path, size) of the files under ``folder`` at ``commit``."""
    out = git(repo, "ls-tree", "-r", "-l", "-z", commit, "--", folder)
    rows = []
    for line in out.split(b"\0"):
        if not line:
            continue
        meta, path = line.split(b"\t", 1)
        _mode, kind, _obj, size = meta.split()
        if kind == b"blob":
            rows.append((path.decode(), int(size)))
    return rows


def put(dst: Path, size: int, write) -> bool:
    """Write ``dst`` atomically with ``write(file)`` unless a file of ``size`` bytes is there."""
    if dst.is_file() and dst.stat().st_size == size:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def copy_from_git(repo: Path, commit: str, folder: str, out: Path, keep=lambda p: True, rename=lambda p: p) -> int:
    n = 0
    for path, size in ls_tree(repo, commit, folder):
        if not keep(path):
            continue
        dst = out / rename(path)
        put(dst, size, lambda f, path=path: f.write(git(repo, "show", f"{commit}:{path}")))
        n += 1
    return n


def musdb(repo: Path, out: Path) -> None:
    for split in ("train", "test"):
        n = copy_from_git(repo, MUSDB_COMMIT, f"musdb/{split}", out / "musdb" / split,
                          keep=lambda p: p.endswith(".stem.mp4"), rename=lambda p: Path(p).name)
        print(f"musdb/{split}: {n} tracks")


def ssvd(repo: Path, out: Path) -> None:
    for folder, name in SSVD_FOLDERS.items():
        n = copy_from_git(repo, "HEAD", folder, out / "voices" / "ssvd" / name,
                          keep=lambda p: p.endswith(".flac"), rename=lambda p: Path(p).name)
        print(f"voices/ssvd/{name}: {n} recordings")


def m4singer(repo: Path, out: Path) -> None:
    for folder, name in M4SINGER_FOLDERS.items():
        # only the files directly in the folder (SVC/ref is not SVC/addition/ref); no vocoded GTvoc clips
        n = copy_from_git(repo, "HEAD", folder, out / "voices" / "m4singer" / name,
                          keep=lambda p, folder=folder: p.endswith(".wav") and str(Path(p).parent) == folder,
                          rename=lambda p: Path(p).name)
        print(f"voices/m4singer/{name}: {n} recordings")


def debian(out: Path, debs: Path) -> None:
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in DEBS if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    for pkg, (folder, inner) in DEBS.items():
        deb = sorted(debs.glob(f"{pkg}_*.deb"))[-1]
        dst = out / "instrumental" / folder
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
            src = Path(tmp) / inner
            n = 0
            if src.suffix == ".pk3":
                with zipfile.ZipFile(src) as z:
                    for info in z.infolist():
                        if info.filename.lower().endswith(MUSIC_EXT):
                            put(dst / Path(info.filename).name, info.file_size, lambda f, info=info: f.write(z.read(info)))
                            n += 1
            else:
                for f in sorted(src.rglob("*")):
                    if f.is_file() and f.suffix.lower() in MUSIC_EXT:
                        rel = f.relative_to(src)
                        # warzone2100 keeps albums in folders; flatten them with the album in the name
                        name = rel if folder.startswith("fretsonfire") else Path("_".join(rel.parts))
                        put(dst / name, f.stat().st_size, lambda fo, f=f: shutil.copyfileobj(open(f, "rb"), fo))
                        n += 1
            copyright_file = Path(tmp) / "usr/share/doc" / pkg / "copyright"
            if copyright_file.is_file():
                put(dst / "COPYRIGHT", copyright_file.stat().st_size, lambda fo: fo.write(copyright_file.read_bytes()))
        print(f"instrumental/{folder}: {n} files from {deb.name}")


def manifest(out: Path) -> None:
    rows = []
    for f in sorted(out.rglob("*")):
        rel = f.relative_to(out)
        if not f.is_file() or rel.parts[0].startswith(".") or rel.parts[0] == "mir1k" or rel.name in ("MANIFEST.json", "vocal-check.json"):
            continue
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        rows.append({"path": str(rel), "bytes": f.stat().st_size, "sha256": h.hexdigest()})
    text = json.dumps({"files": rows}, indent=1)
    put(out / "MANIFEST.json", len(text.encode()), lambda f: f.write(text.encode()))
    print(f"MANIFEST.json: {len(rows)} files")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="the data folder (outside the repository)")
    ap.add_argument("--musdb-repo", type=Path, help="a clone of skimura1/VocalExractionUnet")
    ap.add_argument("--ssvd-repo", type=Path, help="a clone of xk-wang/SSVD-v2.0")
    ap.add_argument("--m4singer-repo", type=Path, help="a clone of M4Singer/M4Singer.github.io")
    ap.add_argument("--mir1k", type=Path, help="MIR-1K (e.g. ../shared/data/mir1k): linked as OUT/mir1k, not copied")
    ap.add_argument("--debs", type=Path, help="folder of the Debian packages (default OUT/.debs; fetched with apt-get download)")
    ap.add_argument("--no-debian", action="store_true", help="skip the Debian packages")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    repo_root = Path(__file__).resolve().parents[1]
    if out == repo_root or repo_root in out.parents:
        print(f"get_data: {out} is inside the repository; choose a folder outside it", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if args.musdb_repo:
        musdb(args.musdb_repo, out)
    if args.ssvd_repo:
        ssvd(args.ssvd_repo, out)
    if args.m4singer_repo:
        m4singer(args.m4singer_repo, out)
    if args.mir1k:
        link = out / "mir1k"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(args.mir1k.resolve(), target_is_directory=True)
        print(f"mir1k -> {args.mir1k.resolve()}")
    if not args.no_debian:
        debian(out, args.debs or out / ".debs")
    manifest(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
