"""STFT and inverse STFT with one shared window, and mask interpolation.

Shapes (fixed names used throughout vocalsep):

- waveform: ``(..., samples)``
- complex spectrogram: ``(..., freqs, frames)`` with ``freqs = n_fft // 2 + 1``
- frame ``j`` is centred on sample ``j * hop`` (``center=True``, zero padding),
  and the last frame is centred at or after the last sample, so a signal of
  ``n`` samples has ``ceil((n - 1) / hop) + 1`` frames (:meth:`STFT.frames`).
  Without that extra frame the last samples would sit under the tail of one
  window only, and a hop of 3/4 of the window (the paper's) would reconstruct
  them badly.
"""

from __future__ import annotations

import math

import torch


class STFT:
    """Short-time Fourier transform with a periodic Hann window.

    ``forward`` and ``inverse`` use the same window, and ``inverse`` divides by
    the summed squared window (least-squares overlap-add), so that
    ``inverse(forward(x), len(x)) == x`` up to float rounding whenever the
    windows overlap (``hop < n_fft``).
    """

    def __init__(self, n_fft: int, hop: int):
        if hop > n_fft or hop <= 0:
            raise ValueError(f"hop must be in (0, n_fft], got n_fft={n_fft} hop={hop}")
        self.n_fft = int(n_fft)
        self.hop = int(hop)
        self._windows: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def freqs(self) -> int:
        return self.n_fft // 2 + 1

    def window(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (device, dtype)
        if key not in self._windows:
            self._windows[key] = torch.hann_window(self.n_fft, periodic=True, dtype=dtype, device=device)
        return self._windows[key]

    def frames(self, samples: int) -> int:
        return -(-(max(samples, 1) - 1) // self.hop) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., samples)`` float -> ``(..., freqs, frames)`` complex."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        extra = (self.frames(shape[-1]) - 1) * self.hop - shape[-1]
        if extra > 0:
            flat = torch.nn.functional.pad(flat, (0, extra))
        spec = torch.stft(
            flat,
            self.n_fft,
            self.hop,
            window=self.window(x.device, x.dtype),
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        return spec.reshape(*shape[:-1], *spec.shape[-2:])

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """``(..., freqs, frames)`` complex -> ``(..., length)`` float."""
        shape = spec.shape
        flat = spec.reshape(-1, *shape[-2:])
        real_dtype = spec.real.dtype if spec.is_complex() else spec.dtype
        y = torch.istft(
            flat,
            self.n_fft,
            self.hop,
            window=self.window(spec.device, real_dtype),
            center=True,
            length=length,
        )
        return y.reshape(*shape[:-2], length)


class SpleeterSTFT(STFT):
    """Spleeter's STFT (``spleeter/model/__init__.py``: ``_build_stft_feature``, ``_inverse_stft``).

    ``forward``: ``n_fft`` zeros are put before the signal, frames of ``n_fft``
    samples start every ``hop`` samples from there, and the end is padded with
    zeros so that ``ceil((n + n_fft) / hop)`` frames cover it
    (``tf.signal.stft(..., pad_end=True)``), periodic Hann window.  Frame
    ``j`` is centred on sample ``(j - lead) * hop`` of the signal, where
    ``lead = n_fft / 2 / hop`` (2 for 4096/1024): the centred grid of
    :class:`STFT` shifted by ``lead`` frames.

    ``inverse``: windowed overlap-add of the inverse FFTs
    (``tf.signal.inverse_stft``) times ``2/3`` (Spleeter's window compensation
    for hop = n_fft / 4, where the squared periodic Hann windows sum to 3/2),
    cropped to ``[n_fft, n_fft + length)``.  Every kept sample lies under
    ``n_fft / hop`` whole windows, so ``inverse(forward(x), len(x)) == x`` up
    to float rounding for hop = n_fft / 4.
    """

    def __init__(self, n_fft: int, hop: int):
        if hop <= 0 or n_fft % hop or (n_fft // 2) % hop:
            raise ValueError(f"SpleeterSTFT needs n_fft / 2 to be a multiple of hop, got n_fft={n_fft} hop={hop}")
        super().__init__(n_fft, hop)
        self.lead = self.n_fft // 2 // self.hop
        self.scale = 2.0 / 3.0 if self.n_fft == 4 * self.hop else None

    def frames(self, samples: int) -> int:
        return -(-(samples + self.n_fft) // self.hop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., samples)`` float -> ``(..., freqs, frames)`` complex: ``n_fft`` zeros in front, ``pad_end``."""
        return self.frame(torch.nn.functional.pad(x, (self.n_fft, 0)), pad_end=True)

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """``(..., freqs, frames)`` complex -> ``(..., length)`` float, undoing :meth:`forward`."""
        return self.overlap_add(spec, self.n_fft + length)[..., self.n_fft :]

    def frame(self, x: torch.Tensor, pad_end: bool, bins: int | None = None) -> torch.Tensor:
        """Frames of ``n_fft`` samples every ``hop`` samples from the first sample of ``x``
        (``tf.signal.stft``): with ``pad_end``, zeros complete ``ceil(n / hop)`` frames; without,
        only the ``(n - n_fft) // hop + 1`` frames that lie inside ``x``.  ``bins``: keep only
        the lowest ``bins`` frequencies.

        Each channel is transformed on its own: a 1024-frame spectrogram of one channel
        stays under glibc's largest mmap threshold (32 MB), so its memory is reused
        chunk after chunk instead of being mapped and faulted in afresh (the same in
        :meth:`overlap_add`)."""
        shape = x.shape
        n = shape[-1]
        flat = x.reshape(-1, n)
        if pad_end:
            frames = max(1, -(-n // self.hop))
            flat = torch.nn.functional.pad(flat, (0, (frames - 1) * self.hop + self.n_fft - n))
        elif n < self.n_fft:
            raise ValueError(f"{n} samples are fewer than one frame of {self.n_fft}")
        window = self.window(x.device, x.dtype)
        rows = []
        for row in flat:
            spec = torch.stft(row, self.n_fft, self.hop, window=window, center=False, return_complex=True)
            rows.append(spec if bins is None else spec[:bins])
        spec = torch.stack(rows) if len(rows) > 1 else rows[0].unsqueeze(0)
        return spec.reshape(*shape[:-1], *spec.shape[-2:])

    def overlap_add(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """Windowed overlap-add of the frames' inverse FFTs (``tf.signal.inverse_stft``) times
        the window compensation, from the first frame's first sample, cut or zero-padded to ``length``.
        A spectrum with fewer than ``n_fft / 2 + 1`` bins is zero above them."""
        shape = spec.shape
        frames = shape[-1]
        flat = spec.reshape(-1, *shape[-2:])
        w = self.window(spec.device, spec.real.dtype)
        k = self.n_fft // self.hop
        # the window compensation: 2/3 for hop = n_fft / 4; other overlaps divide by the
        # (constant) summed squared window
        gain = self.scale if self.scale is not None else 1.0 / float((w.reshape(k, self.hop) ** 2).sum(0).mean())
        w = w * gain
        batch = flat.shape[0]
        out = w.new_zeros(batch, frames + k - 1, self.hop)
        for b in range(batch):  # one channel at a time: its buffers stay under the mmap threshold (frame)
            chunks = torch.fft.irfft(flat[b].transpose(-1, -2), n=self.n_fft, dim=-1)  # (frames, n_fft)
            chunks.mul_(w)  # in place: one pass over the frames, no second buffer
            # frame j's part i (of k hop-long parts) lands in hop block j + i
            parts = chunks.view(frames, k, self.hop)
            for i in range(k):
                out[b, i : i + frames] += parts[:, i]
        y = out.reshape(batch, -1)[:, :length]
        if y.shape[-1] < length:
            y = torch.nn.functional.pad(y, (0, length - y.shape[-1]))
        return y.reshape(*shape[:-2], length)


def lerp_axis(x: torch.Tensor, positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Linear interpolation of ``x`` along ``dim`` at fractional ``positions``.

    Positions outside ``[0, size - 1]`` take the edge value.
    """
    size = x.shape[dim]
    pos = positions.clamp(0, size - 1)
    i0 = pos.floor().long().clamp(0, size - 1)
    i1 = (i0 + 1).clamp(max=size - 1)
    w = (pos - i0.to(pos.dtype)).to(x.dtype)
    a = x.index_select(dim, i0)
    b = x.index_select(dim, i1)
    view = [1] * x.dim()
    view[dim] = -1
    return torch.lerp(a, b, w.view(view))


def interpolate_mask(
    mask: torch.Tensor,
    *,
    src_rate: int,
    src_n_fft: int,
    src_hop: int,
    dst_rate: int,
    dst_n_fft: int,
    dst_hop: int,
    dst_frames: int,
    high: str | float = "edge",
    edge_hz: float = 1000.0,
) -> torch.Tensor:
    """Map a mask from one STFT grid onto another by time and frequency in Hz.

    ``mask``: ``(..., src_bins, src_frames)`` on the grid of an STFT with
    ``src_n_fft``/``src_hop`` at ``src_rate`` (``src_bins`` may be fewer than
    ``src_n_fft // 2 + 1``: the modelled band).  Returns ``(..., dst_n_fft // 2 + 1,
    dst_frames)``, bilinear in (seconds, Hz) between the bin and frame
    centres.  Bins above the highest modelled frequency get, per frame:

    - ``"edge"``: the mean of the mask over the top ``edge_hz`` of the modelled band;
    - ``"zero"`` or a number: that constant.
    """
    src_bins, src_frames = mask.shape[-2], mask.shape[-1]
    device = mask.device
    dst_freqs = dst_n_fft // 2 + 1
    # frequency first (on the few source frames), then time
    f = torch.arange(dst_freqs, device=device, dtype=torch.float64) * (dst_rate / dst_n_fft) / (src_rate / src_n_fft)
    top = src_bins - 1
    inside = int((f <= top + 1e-9).sum())
    t = torch.arange(dst_frames, device=device, dtype=torch.float64) * (dst_hop / dst_rate) / (src_hop / src_rate)
    low = lerp_axis(lerp_axis(mask, f[:inside], mask.dim() - 2), t.clamp(max=src_frames - 1), mask.dim() - 1)
    if inside == dst_freqs:
        return low
    out = mask.new_empty(*mask.shape[:-2], dst_freqs, dst_frames)
    out[..., :inside, :] = low
    if high == "edge":
        k = max(1, int(round(edge_hz / (src_rate / src_n_fft))))
        per_frame = mask[..., src_bins - k :, :].mean(dim=-2)
        out[..., inside:, :] = lerp_axis(per_frame, t.clamp(max=src_frames - 1), per_frame.dim() - 1).unsqueeze(-2)
    elif high == "zero":
        out[..., inside:, :] = 0.0
    elif isinstance(high, (int, float)) and not isinstance(high, bool) and math.isfinite(high):
        out[..., inside:, :] = float(high)
    else:
        raise ValueError(f"unknown high-band rule {high!r}")
    return out


def apply_mask(spec: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``spec * mask`` for a complex ``spec`` and a real ``mask`` (without promoting the mask to
    complex) or a complex one."""
    if mask.is_complex():
        return spec * mask
    return torch.view_as_complex(torch.view_as_real(spec) * mask.unsqueeze(-1))
