"""BSS Eval metrics, each variant named exactly.

``v3`` (the paper's, the default of ``vocalsep evaluate``)
    BSS Eval v3 *sources*: ``mir_eval.separation.bss_eval_sources`` on mono
    signals, without permutation search, over the whole signal (not
    framewise): SDR, SIR, SAR.  NSDR of an estimate = SDR(estimate, reference)
    - SDR(mixture, reference), both computed with the same set of references.

``museval`` (SiSEC / MUSDB18 style)
    BSS Eval v4 *images* as in museval 0.3/0.4 (:func:`bss_eval_v4`):
    distortion filters of 512 taps estimated once over the whole track (time
    invariant), metrics on windows of 1 s with a hop of 1 s (a trailing part
    shorter than a window is not scored, as in museval), SDR, ISR, SIR, SAR per
    window; a window in which a reference or an estimate is all zeros has no
    value (NaN, museval's rule) and the track's value is the median over the
    remaining windows.  Tracks are then summarised by their median.

Silence: BSS Eval is undefined when a whole reference or a whole estimate is
all zeros.  :func:`silent_sources` names them so that callers can record an
explicit outcome instead of a crash or a NaN in a mean.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..stems import STEMS

FILTER_TAPS = 512

VARIANTS = {
    "v3": (
        "BSS Eval v3 sources (mir_eval.separation.bss_eval_sources; mono signals, whole track, "
        "no permutation search); NSDR = SDR(estimate) - SDR(mixture); track means, "
        "GNSDR = duration-weighted mean NSDR"
    ),
    "museval": (
        "BSS Eval v4 images (museval 0.3/0.4 algorithm; time-invariant 512-tap distortion filters, "
        "1 s windows, 1 s hop); per track: median over windows; over tracks: median; "
        "NSDR = SDR(estimate) - SDR(mixture), both per-track medians"
    ),
}


def silent_sources(names, signals) -> list[str]:
    """The names whose signal is all zeros (BSS Eval is undefined for them)."""
    return [n for n, x in zip(names, signals) if not np.any(np.asarray(x))]


def bss_eval_v3(references: np.ndarray, estimates: np.ndarray, engine: str = "cached") -> dict[str, np.ndarray]:
    """SDR, SIR, SAR per source for mono ``(sources, samples)`` arrays.

    ``engine="mir_eval"`` calls ``mir_eval.separation.bss_eval_sources``
    itself; ``"cached"`` (default) is :class:`SourcesV3`, the same algorithm
    with the references' work done once, so that a track's several
    estimates share it; ``tests/test_metrics.py`` compares it with mir_eval.
    """
    references = np.asarray(references, np.float64)
    estimates = np.asarray(estimates, np.float64)
    n = min(references.shape[-1], estimates.shape[-1])
    if engine == "cached":
        return SourcesV3(references[:, :n]).score(estimates[:, :n])
    if engine != "mir_eval":
        raise ValueError(f"unknown BSS Eval engine {engine!r}")
    import mir_eval.separation as sep

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval 0.8 announces the module's deprecation
        sdr, sir, sar, _ = sep.bss_eval_sources(references[:, :n], estimates[:, :n], compute_permutation=False)
    return {"sdr": sdr, "sir": sir, "sar": sar}


class SourcesV3:
    """BSS Eval v3 sources for one set of mono references ``(sources, samples)``.

    The algorithm of ``mir_eval.separation.bss_eval_sources`` (0.8) without
    permutation search: for estimate ``j``, least-squares projections onto
    the ``taps``-delayed versions of reference ``j`` and of all references
    give the true source, spatial distortion, interference and artifacts;
    SDR, SIR and SAR are their energy ratios.  What depends only on the
    references (their spectra, the Gram matrix of their delayed versions and
    its LU factorisation) is computed once here, so that scoring the mixture
    and every system of a track shares it; mir_eval recomputes it twice per
    estimate.
    """

    def __init__(self, references: np.ndarray, taps: int = FILTER_TAPS):
        from scipy.linalg import lu_factor

        self.refs = np.asarray(references, np.float64)
        if self.refs.ndim != 2:
            raise ValueError(f"references must be (sources, samples), got shape {self.refs.shape}")
        self.k, self.n = self.refs.shape
        self.taps = taps
        self.n_fft = _fft_size(self.n + taps - 1)
        self.spectra = np.fft.rfft(self.refs, self.n_fft)
        G = _gram(self.spectra, self.n_fft, taps)
        blocks = [G] + [G[j * taps : (j + 1) * taps, j * taps : (j + 1) * taps] for j in range(self.k)]
        self._solvers = []
        for g in blocks:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a singular matrix is detected below
                lu = lu_factor(g, check_finite=False)
            singular = not np.all(np.isfinite(lu[0])) or np.any(np.diag(lu[0]) == 0)
            self._solvers.append(("lstsq", g) if singular else ("lu", lu))  # mir_eval's fallback

    def _project(self, which: int, rows: list[int], est_spectrum: np.ndarray) -> np.ndarray:
        """Least-squares projection of one estimate onto the delayed references ``rows``: ``(n + taps - 1,)``."""
        from scipy.linalg import lu_solve

        corr = np.fft.irfft(est_spectrum[None] * np.conj(self.spectra[rows]), self.n_fft)[:, : self.taps]
        kind, solver = self._solvers[which]
        D = corr.reshape(-1)
        C = lu_solve(solver, D, check_finite=False) if kind == "lu" else np.linalg.lstsq(solver, D, rcond=None)[0]
        H = np.fft.rfft(C.reshape(len(rows), self.taps), self.n_fft, axis=1)
        return np.fft.irfft((H * self.spectra[rows]).sum(axis=0), self.n_fft)[: self.n + self.taps - 1]

    def score(self, estimates: np.ndarray) -> dict[str, np.ndarray]:
        """SDR, SIR, SAR ``(sources,)`` of ``estimates`` ``(sources, samples)``, estimate ``j`` against reference ``j``."""
        E = np.asarray(estimates, np.float64)
        if E.shape != (self.k, self.n):
            raise ValueError(f"estimates must have the references' shape {(self.k, self.n)}, got {E.shape}")
        out = {m: np.empty(self.k) for m in ("sdr", "sir", "sar")}
        for j in range(self.k):
            spectrum = np.fft.rfft(E[j], self.n_fft)
            s_true = np.zeros(self.n + self.taps - 1)
            s_true[: self.n] = self.refs[j]
            e_spat = self._project(1 + j, [j], spectrum) - s_true
            e_interf = self._project(0, list(range(self.k)), spectrum) - s_true - e_spat
            e_artif = -s_true - e_spat - e_interf
            e_artif[: self.n] += E[j]
            s_filt = s_true + e_spat
            out["sdr"][j] = _db(float(np.sum(s_filt**2)), float(np.sum((e_interf + e_artif) ** 2)))
            out["sir"][j] = _db(float(np.sum(s_filt**2)), float(np.sum(e_interf**2)))
            out["sar"][j] = _db(float(np.sum((s_filt + e_interf) ** 2)), float(np.sum(e_artif**2)))
        return out


def _mono_stack(signals: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([np.asarray(signals[s], np.float64).reshape(-1) for s in STEMS])


def nsdr_scores(mixture: np.ndarray, references: dict[str, np.ndarray], estimates: dict[str, np.ndarray],
                mixture_sdr: np.ndarray | None = None, scorer: "SourcesV3 | None" = None) -> dict[str, dict[str, float]]:
    """Per source: SDR, SIR, SAR of the estimates and NSDR, for mono signals ``(samples,)``.

    ``references`` and ``estimates`` map ``vocals`` and ``accompaniment`` to
    mono arrays.  ``mixture_sdr`` (from :func:`mixture_sdr_v3`) saves scoring
    the mixture again when several systems are scored on one track, and
    ``scorer`` (a :class:`SourcesV3` of these references) the references'
    share of the work.  Raises
    ValueError when a reference or an estimate is all zeros (BSS Eval is
    undefined there).
    """
    refs = _mono_stack(references)
    ests = _mono_stack(estimates)
    for kind, arr in (("reference", refs), ("estimate", ests)):
        for s in silent_sources(STEMS, arr):
            raise ValueError(f"the {s} {kind} is silent: BSS Eval is undefined")
    if mixture_sdr is None:
        mixture_sdr = mixture_sdr_v3(mixture, references, scorer)
    n = min(refs.shape[-1], ests.shape[-1])
    if scorer is None or scorer.n != n:
        scorer = SourcesV3(refs[:, :n])
    est_scores = scorer.score(ests[:, :n])
    return {
        s: {
            "sdr": float(est_scores["sdr"][i]),
            "sir": float(est_scores["sir"][i]),
            "sar": float(est_scores["sar"][i]),
            "nsdr": float(est_scores["sdr"][i] - mixture_sdr[i]),
        }
        for i, s in enumerate(STEMS)
    }


def mixture_sdr_v3(mixture: np.ndarray, references: dict[str, np.ndarray], scorer: "SourcesV3 | None" = None) -> np.ndarray:
    """SDR of the mono mixture taken as the estimate of each source (the NSDR baseline), in ``STEMS`` order."""
    mix = np.asarray(mixture, np.float64).reshape(-1)
    if scorer is not None and scorer.n == mix.size:
        return scorer.score(np.stack([mix] * len(STEMS)))["sdr"]
    return bss_eval_v3(_mono_stack(references), np.stack([mix] * len(STEMS)))["sdr"]


# -- BSS Eval v4 (images, time-invariant filters)

def _windows(n: int, window: int, hop: int) -> list[slice]:
    """museval's framing: full windows only (one window when the signal is shorter than one)."""
    if window >= n:
        return [slice(0, n)]
    count = (n - window + hop) // hop
    return [slice(t * hop, min(t * hop + window, n)) for t in range(count)]


def _fft_size(n: int) -> int:
    return 1 << int(np.ceil(np.log2(n)))


def _gram(spectra: np.ndarray, n_fft: int, taps: int) -> np.ndarray:
    """Gram matrix of every (signal, lag) pair: ``spectra`` is ``(signals, n_fft // 2 + 1)``
    (the rfft of zero-padded signals); returns ``(signals * taps, signals * taps)`` with
    entry ``[(a, p), (b, q)] = <a delayed by p, b delayed by q>``."""
    from scipy.linalg import toeplitz

    k = spectra.shape[0]
    G = np.empty((k, taps, k, taps))
    for a in range(k):
        for b in range(a, k):
            c = np.fft.irfft(spectra[b] * np.conj(spectra[a]), n_fft)  # c[m] = sum_s a[s] b[s + m]
            block = toeplitz(c[:taps], np.concatenate(([c[0]], c[-1 : -taps : -1])))  # [p, q] = c[p - q]
            G[a, :, b, :] = block
            G[b, :, a, :] = block.T
    return G.reshape(k * taps, k * taps)


def _projection_filters(G: np.ndarray, ref_spectra: np.ndarray, est_spectra: np.ndarray, n_fft: int, taps: int) -> np.ndarray:
    """Least-squares filters ``(signals, taps, est_channels)`` that map the delayed references onto each estimate channel."""
    k = ref_spectra.shape[0]
    D = np.empty((k, taps, est_spectra.shape[0]))
    for c in range(est_spectra.shape[0]):
        corr = np.fft.irfft(est_spectra[c][None] * np.conj(ref_spectra), n_fft)  # [a, l] = <a delayed by l, est_c>
        D[:, :, c] = corr[:, :taps]
    D = D.reshape(k * taps, -1)
    eps = np.finfo(float).eps
    try:
        C = np.linalg.solve(G + eps * np.eye(G.shape[0]), D)
    except np.linalg.LinAlgError:
        C = np.linalg.lstsq(G, D, rcond=None)[0]
    return C.reshape(k, taps, -1)


def _project(signals: np.ndarray, filters: np.ndarray, taps: int) -> np.ndarray:
    """``sum_a filters[a, :, c] * signals[a]`` (full convolution) -> ``(channels, n + taps - 1)``."""
    n = signals.shape[-1] + taps - 1
    n_fft = _fft_size(n)
    S = np.fft.rfft(signals, n_fft)  # (signals, F)
    H = np.fft.rfft(filters, n_fft, axis=1)  # (signals, F, channels)
    return np.fft.irfft(np.einsum("af,afc->cf", S, H), n_fft)[:, :n]


def _db(num: float, den: float) -> float:
    if den == 0:
        return float("inf")
    if num == 0:
        return float("-inf")
    return float(10 * np.log10(num / den))


def bss_eval_v4(references: np.ndarray, estimates: np.ndarray, window: int, hop: int,
                taps: int = FILTER_TAPS) -> dict[str, np.ndarray]:
    """BSS Eval v4 images: SDR, ISR, SIR, SAR per source and window.

    ``references`` and ``estimates`` are ``(sources, channels, samples)``
    (estimate ``j`` is scored against reference ``j``; no permutation).  The
    distortion filters (``taps`` long) are estimated once over the whole
    signals; each window then decomposes the estimate into the true source
    image, spatial distortion, interference and artifacts.  Returns arrays
    ``(sources, windows)``; a window where any reference or estimate is all
    zeros is NaN (museval's rule).  Raises ValueError for a whole source that is
    all zeros.
    """
    R = np.asarray(references, np.float64)
    E = np.asarray(estimates, np.float64)
    if R.ndim != 3 or R.shape != E.shape:
        raise ValueError(f"references and estimates must both be (sources, channels, samples); got {R.shape} and {E.shape}")
    nsrc, nchan, n = R.shape
    for kind, arr in (("reference", R), ("estimate", E)):
        silent = silent_sources(range(nsrc), arr)
        if silent:
            raise ValueError(f"{kind} source(s) {silent} are all zeros: BSS Eval is undefined")
    n_fft = _fft_size(n + taps - 1)
    ref_spectra = np.fft.rfft(R.reshape(nsrc * nchan, n), n_fft)
    G = _gram(ref_spectra, n_fft, taps)
    own = [slice(j * nchan * taps, (j + 1) * nchan * taps) for j in range(nsrc)]
    filters_all, filters_own = [], []
    for j in range(nsrc):
        est_spectra = np.fft.rfft(E[j], n_fft)
        filters_all.append(_projection_filters(G, ref_spectra, est_spectra, n_fft, taps))
        rows = slice(j * nchan, (j + 1) * nchan)
        filters_own.append(_projection_filters(G[own[j], own[j]], ref_spectra[rows], est_spectra, n_fft, taps))
    wins = _windows(n, window, hop)
    out = {m: np.full((nsrc, len(wins)), np.nan) for m in ("sdr", "isr", "sir", "sar")}
    for t, w in enumerate(wins):
        r, e = R[:, :, w], E[:, :, w]
        if silent_sources(range(nsrc), r) or silent_sources(range(nsrc), e):
            continue
        length = r.shape[-1]
        all_refs = r.reshape(nsrc * nchan, length)
        for j in range(nsrc):
            s_true = np.zeros((nchan, length + taps - 1))
            s_true[:, :length] = r[j]
            e_spat = _project(r[j], filters_own[j], taps) - s_true
            e_interf = _project(all_refs, filters_all[j], taps) - s_true - e_spat
            e_artif = -s_true - e_spat - e_interf
            e_artif[:, :length] += e[j]
            energy = float(np.sum(s_true**2))
            out["sdr"][j, t] = _db(energy, float(np.sum((e_spat + e_interf + e_artif) ** 2)))
            out["isr"][j, t] = _db(energy, float(np.sum(e_spat**2)))
            out["sir"][j, t] = _db(float(np.sum((s_true + e_spat) ** 2)), float(np.sum(e_interf**2)))
            out["sar"][j, t] = _db(float(np.sum((s_true + e_spat + e_interf) ** 2)), float(np.sum(e_artif**2)))
    return out


def museval_scores(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray], rate: int,
                   window: float = 1.0, hop: float = 1.0) -> dict[str, dict]:
    """SiSEC-style scores of one track: per source, the per-window values and their median.

    ``references`` and ``estimates`` map ``vocals`` and ``accompaniment`` to
    ``(channels, samples)`` arrays at ``rate``; estimates are cut or zero-padded
    to the references' length (museval's ``pad_or_truncate``).  Returns
    ``{source: {"sdr": median, "isr": ..., "sir": ..., "sar": ..., "frames": {metric: [per window]}}}``;
    a median over windows that are all NaN is NaN (the caller records it as undefined).
    """
    refs = np.stack([np.asarray(references[s], np.float64) for s in STEMS])
    n = refs.shape[-1]
    ests = []
    for s in STEMS:
        e = np.asarray(estimates[s], np.float64)
        e = e[..., :n] if e.shape[-1] >= n else np.pad(e, [(0, 0)] * (e.ndim - 1) + [(0, n - e.shape[-1])])
        ests.append(e)
    raw = bss_eval_v4(refs, np.stack(ests), int(window * rate), int(hop * rate))
    out = {}
    for i, s in enumerate(STEMS):
        d: dict = {}
        for m, v in raw.items():
            vals = v[i]
            d[m] = float(np.nanmedian(vals)) if np.any(~np.isnan(vals)) else float("nan")
        d["frames"] = {m: [None if np.isnan(x) else float(x) for x in v[i]] for m, v in raw.items()}
        out[s] = d
    return out
