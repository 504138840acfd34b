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
