"""Evaluation: BSS Eval metrics (SDR, SIR, SAR) and NSDR."""

from .metrics import bss_eval_v3, nsdr_scores

__all__ = ["bss_eval_v3", "nsdr_scores"]
