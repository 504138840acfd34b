"""A signal's exception held back where it would cut a step in two (vocalsep._signals)."""

import pytest

from vocalsep import Separator
from vocalsep._signals import deferred_signals, raise_or_defer
from vocalsep.audio import AudioWriter
from vocalsep.cli import Terminated


def test_an_exception_waits_for_the_end_of_the_block():
    done = []
    with pytest.raises(Terminated):
        with deferred_signals():
            with deferred_signals():  # nested: only the outermost block's end raises
                raise_or_defer(Terminated())
                done.append("inner")
            done.append("outer")
    assert done == ["inner", "outer"]
    with pytest.raises(Terminated):  # outside a block it is raised at once
        raise_or_defer(Terminated())
    with deferred_signals():  # and nothing is left pending for the next block
        pass


def test_a_signal_while_a_writer_opens_leaves_no_temporary_file(tmp_path, song_wav, tiny_model_dir, monkeypatch):
    """SIGTERM arriving inside the second writer's constructor, after its temporary file exists:
    both temporary files are discarded and the exception still ends the separation."""
    opened = []
    real_init = AudioWriter.__init__

    def init(self, path, *args, **kwargs):
        real_init(self, path, *args, **kwargs)
        opened.append(path)
        if len(opened) == 2:
            raise_or_defer(Terminated())  # what the SIGTERM handler does

    monkeypatch.setattr(AudioWriter, "__init__", init)
    sep = Separator.from_pretrained(tiny_model_dir)
    with pytest.raises(Terminated):
        sep.separate_file(song_wav, tmp_path / "out")
    assert len(opened) == 2
    assert not (tmp_path / "out").exists() or not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


def test_a_signal_during_soxrs_first_import_waits_until_it_is_done(monkeypatch):
    """soxr's extension module crashes (SIGSEGV) when a SIGTERM's exception is raised inside its
    initialisation, which is where a SIGTERM early in a separation lands: resample's first import of
    soxr holds the exception back until the module is whole, then raises it."""
    import importlib.abc
    import sys

    import numpy as np

    from vocalsep.audio import resample

    seen = []

    class SignalDuringImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "soxr":
                seen.append("import")
                raise_or_defer(Terminated())  # what the SIGTERM handler does, as the import starts
            return None  # the real finder then loads it

    monkeypatch.delitem(sys.modules, "soxr", raising=False)
    monkeypatch.setattr(sys, "meta_path", [SignalDuringImport(), *sys.meta_path])
    with pytest.raises(Terminated):
        resample(np.zeros((1, 100), np.float32), 8000, 16000)
    assert seen == ["import"] and hasattr(sys.modules["soxr"], "resample")  # imported whole, then raised
    assert resample(np.zeros((1, 100), np.float32), 8000, 16000).shape == (1, 200)  # nothing left pending
