"""Several framings of one segment (``shifts``): their offsets, and the average of their stems."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from ..config import Preset


def _as_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad the last axis to ``n`` samples."""
    if x.shape[-1] >= n:
        return x[..., :n]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])])


def shift_offsets(preset: Preset, shifts: int, sample_rate: int) -> list[int]:
    """Delays in samples at ``sample_rate``: ``k / shifts`` of the model's hop, ``k = 0 .. shifts - 1``."""
    hop = preset.hop * sample_rate / preset.sample_rate
    return [int(round(k * hop / shifts)) for k in range(shifts)]


def delay(x: np.ndarray, samples: int) -> np.ndarray:
    """``x`` (``(..., n)``) with ``samples`` zeros before it."""
    if not samples:
        return x
    return np.concatenate([np.zeros((*x.shape[:-1], samples), x.dtype), x], axis=-1)


def shift_average(separate: Callable[[int], Mapping[str, np.ndarray]], n: int, offsets: Sequence[int]) -> dict[str, np.ndarray]:
    """The mean over ``offsets`` of ``separate(s)``, the stems of the input delayed by ``s`` samples,
    each advanced back by ``s`` and cut to ``n`` samples."""
    total: dict[str, np.ndarray] | None = None
    for s in offsets:
        out = {k: v[..., s : s + n] for k, v in separate(s).items()}
        total = out if total is None else {k: total[k] + out[k] for k in total}
    assert total is not None
    return {k: v / len(offsets) if len(offsets) > 1 else v for k, v in total.items()}
