"""The bad-input corpus of ``tests/bad_inputs.py``, command by command: each bad input named on one
error line with its reason, exit codes 0/1/2, the rest of a batch done, nothing half-written left
behind, no traceback.  The fast cases run in this process; the kills and signals (a process each)
under ``-m slow``.  ``python tests/bad_inputs.py`` runs them all, each in a process of its own."""

from __future__ import annotations

import importlib.util

import pytest

import bad_inputs


def _run(groups, tmp_path, in_process: bool) -> None:
    results = [bad_inputs.run_case(case, in_process) for case in bad_inputs.build(tmp_path, groups)]
    failed = [f"{r['name']}: {'; '.join(r['problems'])}" for r in results if not r["ok"]]
    assert results and not failed, "\n".join(failed)


@pytest.mark.parametrize("group", [g for g in bad_inputs.GROUPS if g != "signals"])
def test_bad_input_corpus(group, tmp_path):
    if group == "listen" and any(importlib.util.find_spec(m) is None for m in ("flask", "waitress", "pyloudnorm")):
        pytest.skip("the listening test needs vocalsep[listen] (flask, waitress, pyloudnorm)")
    _run([group], tmp_path, in_process=True)


@pytest.mark.slow
def test_bad_input_corpus_signals(tmp_path):
    _run(["signals"], tmp_path, in_process=False)
