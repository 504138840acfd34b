import numpy as np
import pytest

from vocalsep.chunking import overlap_add


def _blocks(x, size):
    for i in range(0, x.shape[1], size):
        yield x[:, i : i + size]


@pytest.mark.parametrize("length", [1, 99, 100, 101, 250, 1000, 1234])
@pytest.mark.parametrize("block", [1, 37, 5000])
def test_identity_process_reconstructs_exactly(length, block):
    rng = np.random.default_rng(length)
    x = rng.standard_normal((2, length)).astype(np.float32)
    out = list(overlap_add(_blocks(x, block), 2, segment=100, overlap=30, process=lambda s: {"a": s, "b": 2 * s}))
    a = np.concatenate([o["a"] for o in out], axis=1)
    b = np.concatenate([o["b"] for o in out], axis=1)
    assert a.shape == x.shape
    np.testing.assert_allclose(a, x, atol=1e-6)
    np.testing.assert_allclose(b, 2 * x, atol=1e-5)


def test_segments_overlap_and_crossfade():
    seen = []

    def process(seg):
        seen.append(seg.shape[1])
        return {"k": np.full_like(seg, float(len(seen)))}

    x = np.zeros((1, 250), np.float32)
    y = np.concatenate([o["k"] for o in overlap_add([x], 1, segment=100, overlap=20, process=process)], axis=1)[0]
    assert seen == [100, 100, 90]  # starts 0, 80, 160
    assert np.all(y[:80] == 1) and np.all(y[100:160] == 2) and np.all(y[180:] == 3)
    fade = y[80:100]
    assert np.all(np.diff(fade) > 0) and 1 < fade[0] < fade[-1] < 2


def test_output_is_streamed_not_held():
    """Blocks come out before the input is fully consumed (bounded memory)."""
    consumed = []

    def source():
        for i in range(50):
            consumed.append(i)
            yield np.zeros((1, 100), np.float32)

    gen = overlap_add(source(), 1, segment=300, overlap=50, process=lambda s: {"k": s})
    next(gen)
    assert len(consumed) < 10


def test_bad_arguments():
    with pytest.raises(ValueError):
        list(overlap_add([np.zeros((1, 10), np.float32)], 1, segment=10, overlap=6, process=lambda s: {"k": s}))
    with pytest.raises(ValueError):
        list(overlap_add([np.zeros((2, 10), np.float32)], 1, segment=10, overlap=2, process=lambda s: {"k": s}))
