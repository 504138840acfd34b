#!/usr/bin/env python
"""Write ``tests/fixtures/tf_bundle/``: a small *real* TensorFlow checkpoint for the
tests of vocalsep's TensorFlow-free checkpoint reader (``vocalsep.spleeter.tfbundle``).

Needs TensorFlow (not a vocalsep dependency); it was run once in the throwaway
environment made for the Spleeter parity fixture (Python 3.11, TensorFlow
2.12.1, see ``scripts/make_spleeter_fixture.py``)::

    /work/spleeter-env/bin/python scripts/make_tf_bundle_fixture.py

It saves, with ``tf.compat.v1.train.Saver`` (the saver Spleeter's checkpoints
come from), variables of several dtypes and shapes with known values, plus
enough long-named variables that the index holds several data blocks; and
writes ``expected.npz`` with every value, read back by TensorFlow's own
``tf.train.load_checkpoint``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tf_bundle"


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    rng = np.random.default_rng(0)
    values = {
        "conv2d/kernel": rng.standard_normal((5, 5, 2, 3)).astype(np.float32),
        "conv2d/bias": np.array([1.5, -2.0, 0.25], np.float32),
        "batch_normalization/moving_variance": np.linspace(0.5, 2.0, 7).astype(np.float32),
        "scalar_double": np.float64(np.pi),
        "ints/int32": np.arange(-5, 6, dtype=np.int32),
        "ints/int64": np.array([2**40, -3, 0], np.int64),
        "half": np.array([[0.5, -1.0], [65504.0, 1e-3]], np.float16),
        "flags": np.array([True, False, True]),
        "empty": np.zeros((0, 4), np.float32),
    }
    # many long names: the index then needs several 4 KB data blocks (and restart points)
    for i in range(120):
        values[f"scope_{i // 10:02d}/a_rather_long_variable_name_to_fill_index_blocks_{i:03d}/kernel"] = (
            np.full((2, i % 5 + 1), i, np.float32))
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.Variable(v, name=k) for k, v in values.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(OUT / "model"), write_meta_graph=False)
    reader = tf.train.load_checkpoint(str(OUT / "model"))
    stored = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}
    assert set(stored) == set(values), set(stored) ^ set(values)
    for k, v in values.items():
        assert np.array_equal(stored[k], v), k
    np.savez_compressed(OUT / "expected.npz", **{k.replace("/", "|"): v for k, v in stored.items()})
    (OUT / "README.md").write_text(
        "A small real TensorFlow checkpoint (tf.compat.v1.train.Saver, TensorFlow "
        f"{tf.__version__}) for the tests of vocalsep.spleeter.tfbundle. Made by "
        "scripts/make_tf_bundle_fixture.py; expected.npz holds every variable as TensorFlow "
        "reads it ('/' in names written as '|'). Its 'checkpoint' file names the absolute path of the machine "
        "that wrote it, as TensorFlow writes it; the reader uses the folder's own files.\n")
    print(json.dumps({"tensorflow": tf.__version__, "variables": len(values),
                      "files": {f.name: f.stat().st_size for f in sorted(OUT.iterdir())}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
