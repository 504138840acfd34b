"""Training pairs from a catalogue: (original, instrumental) versions of the same recording.

The paper's data idea (Jansson et al. 2017, section 3.2): find instrumental
releases beside their original mixes by metadata, then verify and align each
pair from the audio.  :func:`mine` runs the whole pipeline; the stages are
usable on their own: :func:`read_catalog` (catalog), :func:`find_candidates`
(match), :func:`digest_file` and :func:`align_pair` (align, pure functions
of file paths).  The manifest written (``pairs.csv``) is read by
:class:`vocalsep.data.PairManifest`.
"""

from .align import AlignConfig, align_pair, digest_file
from .catalog import Entry, read_catalog
from .match import MatchConfig, find_candidates, normalise_artist, parse_title
from .run import MineConfig, mine

__all__ = ["AlignConfig", "Entry", "MatchConfig", "MineConfig", "align_pair", "digest_file", "find_candidates", "mine",
           "normalise_artist", "parse_title", "read_catalog"]
