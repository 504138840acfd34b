"""Evaluation: BSS Eval metrics (SDR, SIR, SAR, ISR), NSDR, and the paper's tables and figures.

``evaluate(...)`` scores systems (trained models, other tools' estimates, the
mixture and the ideal-mask oracle) on a dataset into an output folder; see
:mod:`vocalsep.evaluation.run`.  ``evaluate`` and ``EvalConfig`` are resolved
lazily so that importing the metrics does not import PyTorch.
"""

from .metrics import VARIANTS, bss_eval_v3, bss_eval_v4, museval_scores, nsdr_scores

__all__ = ["VARIANTS", "EvalConfig", "bss_eval_v3", "bss_eval_v4", "evaluate", "museval_scores", "nsdr_scores"]


def __getattr__(name: str):
    if name in ("evaluate", "EvalConfig"):
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module 'vocalsep.evaluation' has no attribute {name!r}")
