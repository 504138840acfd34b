"""BSS Eval v3 ("sources", as in mir_eval and the paper) and NSDR.

Variant: ``mir_eval.separation.bss_eval_sources`` on mono signals, without
permutation search, over the whole signal (not framewise).  NSDR of an
estimate = SDR(estimate, reference) - SDR(mixture, reference), both computed
with the same set of references.
"""

from __future__ import annotations

import warnings

import numpy as np

SOURCES = ("vocals", "accompaniment")


def bss_eval_v3(references: np.ndarray, estimates: np.ndarray) -> dict[str, np.ndarray]:
    """SDR, SIR, SAR per source for mono ``(sources, samples)`` arrays."""
    import mir_eval.separation as sep

    references = np.asarray(references, np.float64)
    estimates = np.asarray(estimates, np.float64)
    n = min(references.shape[-1], estimates.shape[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval 0.8 announces the module's deprecation
        sdr, sir, sar, _ = sep.bss_eval_sources(references[:, :n], estimates[:, :n], compute_permutation=False)
    return {"sdr": sdr, "sir": sir, "sar": sar}


def nsdr_scores(mixture: np.ndarray, references: dict[str, np.ndarray], estimates: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per source: SDR, SIR, SAR of the estimates and NSDR, for mono signals ``(samples,)``.

    ``references`` and ``estimates`` map ``vocals`` and ``accompaniment`` to
    mono arrays.  Raises ValueError when a reference is all zeros (BSS Eval
    is undefined there).
    """
    names = list(SOURCES)
    refs = np.stack([np.asarray(references[s], np.float64).reshape(-1) for s in names])
    for s, r in zip(names, refs):
        if not np.any(r):
            raise ValueError(f"the {s} reference is silent: BSS Eval is undefined")
    ests = np.stack([np.asarray(estimates[s], np.float64).reshape(-1) for s in names])
    mix = np.asarray(mixture, np.float64).reshape(-1)
    est_scores = bss_eval_v3(refs, ests)
    mix_scores = bss_eval_v3(refs, np.stack([mix, mix]))
    return {
        s: {
            "sdr": float(est_scores["sdr"][i]),
            "sir": float(est_scores["sir"][i]),
            "sar": float(est_scores["sar"][i]),
            "nsdr": float(est_scores["sdr"][i] - mix_scores["sdr"][i]),
        }
        for i, s in enumerate(names)
    }
