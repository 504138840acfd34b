"""vocalsep: singing voice separation with the U-Net of Jansson et al. (ISMIR 2017).

``from vocalsep import Separator`` is resolved lazily, so that importing the
package (and ``vocalsep --help``) does not import PyTorch.
"""

from __future__ import annotations

from ._version import __version__

__all__ = ["Separator", "SeparationOptions", "__version__"]


def __getattr__(name: str):
    if name in ("Separator", "SeparationOptions"):
        from . import separator

        return getattr(separator, name)
    raise AttributeError(f"module 'vocalsep' has no attribute {name!r}")
