"""glibc's allocator, tuned for separation: keep freed memory for reuse instead of unmapping it.

Separation allocates the same large spectrograms segment after segment; memory returned to the kernel
would be mapped and faulted in afresh each time.  :func:`keep_freed_memory` is called by ``vocalsep
separate`` and by each of its ``--jobs`` workers, and a program using the Python API may call it
(a process that runs several separations at once, as the web app does, holds more memory with it); it does nothing where the C library is not glibc.
"""

from __future__ import annotations

_DONE = {"tuned": False}


def keep_freed_memory() -> None:
    """Ask glibc to reuse freed memory instead of unmapping it (once per process; a no-op elsewhere)."""
    if _DONE["tuned"]:
        return
    _DONE["tuned"] = True
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    libc.mallopt(m_mmap_threshold, 32 << 20)  # the largest glibc accepts
    libc.mallopt(m_trim_threshold, 1 << 30)
    libc.mallopt(m_top_pad, 64 << 20)
