"""Atomic file output: write to a hidden temporary file beside the target, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def temp_beside(path: Path) -> Path:
    """A new empty hidden file ``.NAME.PID-XXXXXXXX.part`` in ``path``'s folder (created if needed),
    with the umask's permissions.  Temporary files of the same target left by a process that no
    longer runs (killed before it could clean up) are removed first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".part", dir=path.parent)
    os.close(fd)
    follow_umask(Path(tmp))
    return Path(tmp)


def remove_stale(path: Path) -> None:
    """Remove the temporary files of ``path`` (:func:`temp_beside`) whose process has ended."""
    head = f".{path.name}."
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(head) and n.endswith(".part")]
    except OSError:
        return
    for name in names:
        pid = name[len(head) :].partition("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            try:
                (path.parent / name).unlink()
            except OSError:
                pass


def _running(pid: int) -> bool:
    if os.name != "posix":  # Windows' os.kill(pid, 0) would send CTRL_C_EVENT: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, say
        return True
    return True


def follow_umask(path: Path) -> None:
    """Give ``path`` the permissions a new file gets under the umask (writers such as
    safetensors make their files private, mode 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def publish(tmp: Path, path: Path) -> Path:
    """Rename the finished temporary file onto ``path``."""
    os.replace(tmp, path)
    return path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; nothing is left behind on failure."""
    tmp = temp_beside(path)
    try:
        tmp.write_text(text, encoding="utf-8")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return publish(tmp, path)


def file_in_the_way(folder: str | os.PathLike) -> Path | None:
    """The file (not a folder) that ``folder`` or its nearest existing parent is, which makes ``folder``
    impossible to create; None when there is none."""
    path = Path(folder)
    found = next((d for d in (path, *path.parents) if d.exists()), None)
    return found if found is not None and not found.is_dir() else None


def missing_dirs(folders, stop: Path) -> list[Path]:
    """The folders among ``folders`` and their parents strictly below ``stop`` that do not exist yet,
    deepest first: what writing into ``folders`` creates (for :func:`remove_empty`)."""
    found: set[Path] = set()
    for folder in folders:
        for d in (folder, *folder.parents):
            if d == stop or stop not in d.parents or d.exists():
                break
            found.add(d)
    return sorted(found, key=lambda d: len(d.parts), reverse=True)


def remove_empty(folders) -> None:
    """Remove each of ``folders`` (deepest first) that is empty; leave the others."""
    for d in folders:
        try:
            d.rmdir()
        except OSError:
            pass
