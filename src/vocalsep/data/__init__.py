"""Training and evaluation data: dataset layouts, deterministic splits, cached features.

Every dataset is a list of :class:`~vocalsep.data.datasets.Track`: a name, a
*group* (the singer or the song: splits never separate a group) and a way to
load its mixture and sources.
"""

from .datasets import DATASETS, MIR1K, MUSDB, PairManifest, StemFolders, Track, open_dataset, split_tracks

__all__ = ["DATASETS", "MIR1K", "MUSDB", "PairManifest", "StemFolders", "Track", "open_dataset", "split_tracks"]
