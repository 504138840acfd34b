"""Frozen, validated configuration: the preset (signal processing) and the U-Net.

A preset is data, not code: it serialises to and from JSON and is stored in
every checkpoint, so that a model always runs with the spectrogram it was
trained on.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ConfigError

NORMALIZATIONS = ("max", "none")  # see vocalsep.model.normalize_magnitude
# Where the network's layers differ between the paper's U-Net (the defaults) and Spleeter's
PADDINGS = ("center", "tf_same")  # see UNetConfig.padding
DECODER_ORDERS = ("bn_act", "act_bn")
SKIP_TAPS = ("activation", "conv")
FINAL_LAYERS = ("deconv", "dilated_conv")
# How the separator turns model masks into full-band stems (vocalsep.separator)
FULLBAND_RULES = ("interpolate", "bandlimited")
HIGH_BAND_RULES = ("edge", "zero")
PAD_RULES = ("wrap",)  # how a segment shorter than the network's input is padded
FRAMINGS = ("center", "spleeter")
CHANNEL_MODES = ("batch", "stereo")
PRECISIONS = ("fp32", "bf16", "auto")
COMBINE_ON = ("mask", "output")
# How the masks of a vocal and an accompaniment model that run together become
# the two stems' masks (see vocalsep.separator.combine_masks).
COMBINE_RULES = ("independent", "average", "ratio", "ratio2")
MAX_WIENER_POWER = 4.0  # the Wiener filter's mask power: in (0, MAX_WIENER_POWER]


def valid_wiener_power(value) -> bool:
    """Whether ``value`` is a Wiener filter mask power: a real number in (0, :data:`MAX_WIENER_POWER`]."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= MAX_WIENER_POWER


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class UNetConfig:
    """The layer table of the U-Net of Jansson et al. (2017).

    ``channels`` are the encoder's output channels; the decoder mirrors them and
    ends in ``out_channels`` masks.  Every layer is a 5x5 convolution with
    stride 2, so the bins and frames of the input must be multiples of
    ``stride ** len(channels)``; the model pads and crops that itself.
    """

    in_channels: int = 1
    out_channels: int = 1
    channels: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    kernel_size: int = 5
    stride: int = 2
    leaky_slope: float = 0.2
    dropout: float = 0.5
    dropout_layers: int = 3  # the first decoder layers that get dropout
    skip: bool = True  # False: the paper's baseline encoder-decoder
    input_norm: str = "max"  # see vocalsep.model.normalize_magnitude
    # The fields below describe Spleeter's variant of the network (the "spleeter"
    # preset); their defaults are the paper's U-Net as vocalsep has always built it.
    # "center": PyTorch padding of kernel_size // 2 on each side; "tf_same":
    # TensorFlow's "same" padding, which for stride 2 pads one row less before
    # than after (1 and 2 for a 5x5 kernel), and the transposed convolutions
    # cropped the same way.
    padding: str = "center"
    # decoder layers: "bn_act" deconv -> BatchNorm -> ReLU (-> dropout);
    # "act_bn" deconv -> ReLU -> BatchNorm (-> dropout), Spleeter's order.
    decoder_order: str = "bn_act"
    # what the decoder receives from the encoder (skips, and the bottleneck):
    # "activation" the encoder layer's output; "conv" its convolution output
    # before BatchNorm (Spleeter's, whose last encoder BatchNorm is then unused).
    skip_tap: str = "activation"
    # "deconv": the last decoder layer outputs out_channels masks through a
    # sigmoid; "dilated_conv": it is a decoder layer like the others with one
    # channel (ReLU, BatchNorm), followed by a 4x4 convolution with dilation 2,
    # "same" padding, to out_channels masks through a sigmoid (Spleeter's).
    final: str = "deconv"
    bn_eps: float = 1e-5  # BatchNorm epsilon (PyTorch's default; TensorFlow's is 1e-3)
    # True: BatchNorm normalises by each training batch's statistics and keeps running ones for
    # separation (the paper's, PyTorch's); False: by its stored statistics in training too, so each
    # BatchNorm is a learnt affine map.  Spleeter's networks were trained so: their stored
    # statistics are the initial 0 and 1, and fine-tuning them with batch statistics breaks them.
    batch_stats: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        _check(self.in_channels >= 1 and self.out_channels >= 1, "U-Net needs >= 1 input and output channel")
        _check(len(self.channels) >= 1 and all(c >= 1 for c in self.channels), "U-Net channels must be positive")
        _check(self.kernel_size % 2 == 1 and self.kernel_size >= 1, "kernel_size must be odd")
        _check(self.stride >= 2, "stride must be >= 2")
        _check(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")
        _check(0 <= self.dropout_layers <= len(self.channels), "dropout_layers exceeds the decoder depth")
        _check(self.input_norm in NORMALIZATIONS, f"input_norm must be one of {NORMALIZATIONS}")
        _check(self.padding in PADDINGS, f"padding must be one of {PADDINGS}")
        _check(self.decoder_order in DECODER_ORDERS, f"decoder_order must be one of {DECODER_ORDERS}")
        _check(self.skip_tap in SKIP_TAPS, f"skip_tap must be one of {SKIP_TAPS}")
        _check(self.final in FINAL_LAYERS, f"final must be one of {FINAL_LAYERS}")
        _check(self.bn_eps > 0, "bn_eps must be positive")

    @property
    def multiple(self) -> int:
        """Bins and frames are padded to a multiple of this."""
        return self.stride ** len(self.channels)


@dataclass(frozen=True)
class Preset:
    """The signal processing a model is trained and run with.

    - ``sample_rate``: the rate the model sees (audio is resampled to it).
    - ``n_fft``/``hop``: STFT with a periodic Hann window of ``n_fft`` samples.
    - ``bins``: the lowest ``bins`` frequency bins are modelled (the top ones
      are dropped; the paper keeps 512 of 513).
    - ``patch_frames``: frames per training patch.
    - ``combine``: how the stems' masks are formed when a vocal and an
      accompaniment model run together (``vocalsep.separator.combine_masks``):
      ``"average"`` (jansson2017's: the vocal mask and one minus the
      accompaniment mask averaged, so the two stems add up to the mixture),
      ``"independent"`` (each model's own mask, as in the paper), ``"ratio"``
      (each mask over their sum) or ``"ratio2"`` (Spleeter's: each output
      squared over the sum of squares).
      It does not change training; separation can override it.
    - ``combine_on``: what the ``"ratio"``/``"ratio2"`` rules compare:
      ``"mask"`` the masks, or ``"output"`` the masks times the mixture
      magnitude (Spleeter's "output spectrograms"; it matters only where the
      mixture is nearly silent, through ``ratio2``'s epsilon).
    - ``fullband``/``high_band``: the separator's full-band and high-band rules
      for this preset (``vocalsep.separator``); a separation option overrides them.
    - ``segment_frames``: model frames per segment of long inputs (a separation
      option overrides it).
    - ``framing``: ``"center"`` frame ``j`` of the STFT is centred on sample
      ``j * hop`` (``vocalsep.spectral.STFT``); ``"spleeter"`` Spleeter's STFT
      (``vocalsep.spectral.SpleeterSTFT``): ``n_fft`` zeros before the signal,
      frames from its start, zeros at the end, inverse scaled by 2/3.
    - ``channel_mode``: ``"batch"`` each audio channel goes through the network
      on its own (``unet.in_channels == 1``); ``"stereo"`` the two channels of
      a stereo signal are the network's two input channels (and its two masks);
      mono is duplicated and the stems averaged back, more channels go through
      in pairs.
    - ``split_patches``: run the network on ``patch_frames``-frame patches of
      each segment, the last one zero-padded, as Spleeter does (False: each
      segment at once).
    - ``precision``: the networks' number format at separation time
      (``vocalsep.separator``): ``"fp32"``; ``"bf16"``; ``"auto"``: bfloat16
      where the device has bfloat16 instructions, else float32.  A separation
      option overrides it.  It does not change training.
    - ``wiener``: EM iterations of the multichannel Wiener filter that refines
      the two networks' stems (``vocalsep.separation.masks.wiener_stems``); 0:
      none, the ``combine`` rule's masks.  It applies with the ``"bandlimited"``
      full-band rule and both networks; a separation option overrides it.  A
      stored preset from before the field takes the value of the preset of its
      name.
    - ``wiener_power``: the power the two networks' masks are raised to in the
      Wiener filter's first estimates (mask ** power x mixture magnitude);
      below 1 the first estimates are softer, and the EM iterations fit the
      stems' powers and stereo images from them.  1: the masks as they are.
      Only with ``wiener``; a separation option overrides it, and a stored
      preset from before the field takes the value of the preset of its name.
    """

    name: str = "jansson2017"
    sample_rate: int = 8192
    n_fft: int = 1024
    hop: int = 768
    bins: int = 512
    patch_frames: int = 128
    unet: UNetConfig = field(default_factory=UNetConfig)
    combine: str = "average"
    combine_on: str = "mask"
    fullband: str = "interpolate"
    high_band: str = "edge"
    segment_frames: int = 320  # 320 x 768 / 8192 Hz = 30 s
    framing: str = "center"
    channel_mode: str = "batch"
    split_patches: bool = False
    precision: str = "fp32"  # jansson2017: float32 networks
    wiener: int = 0  # no Wiener filter
    wiener_power: float = 1.0  # the masks as they are

    def __post_init__(self) -> None:
        if isinstance(self.unet, dict):
            object.__setattr__(self, "unet", UNetConfig(**self.unet))
        _check(self.sample_rate > 0, "sample_rate must be positive")
        _check(self.n_fft > 0 and self.hop > 0, "n_fft and hop must be positive")
        _check(self.hop <= self.n_fft, "hop must not exceed n_fft")
        _check(0 < self.bins <= self.n_fft // 2 + 1, "bins must be in (0, n_fft/2 + 1]")
        _check(self.patch_frames > 0, "patch_frames must be positive")
        _check(self.combine in COMBINE_RULES, f"combine must be one of {COMBINE_RULES}, not {self.combine!r}")
        _check(self.combine_on in COMBINE_ON, f"combine_on must be one of {COMBINE_ON}")
        _check(self.fullband in FULLBAND_RULES, f"fullband must be one of {FULLBAND_RULES}")
        _check(self.high_band in HIGH_BAND_RULES, f"high_band must be one of {HIGH_BAND_RULES}")
        _check(self.segment_frames >= 8, "segment_frames must be at least 8")
        _check(self.framing in FRAMINGS, f"framing must be one of {FRAMINGS}")
        _check(self.channel_mode in CHANNEL_MODES, f"channel_mode must be one of {CHANNEL_MODES}")
        _check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}")
        _check(isinstance(self.wiener, int) and not isinstance(self.wiener, bool) and 0 <= self.wiener <= 10,
               "wiener must be a whole number of EM iterations from 0 to 10")
        _check(valid_wiener_power(self.wiener_power), f"wiener_power must be a number in (0, {MAX_WIENER_POWER:g}], not {self.wiener_power!r}")
        if self.channel_mode == "stereo":
            _check(self.unet.in_channels == 2 and self.unet.out_channels == 2, "channel_mode 'stereo' needs a U-Net with 2 input and 2 output channels")
        else:
            _check(self.unet.in_channels == 1 and self.unet.out_channels == 1, "channel_mode 'batch' needs a U-Net with 1 input and 1 output channel")
        if self.framing == "spleeter":
            _check(self.n_fft % self.hop == 0 and (self.n_fft // 2) % self.hop == 0, "framing 'spleeter' needs n_fft / 2 to be a multiple of hop")

    @property
    def max_frequency(self) -> float:
        """Centre frequency (Hz) of the highest modelled bin."""
        return (self.bins - 1) * self.sample_rate / self.n_fft

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preset":
        data = dict(data)
        unet = data.pop("unet", {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        _check(not unknown, f"unknown preset keys: {sorted(unknown)}")
        for key in ("wiener", "wiener_power"):
            if key not in data and data.get("name") in PRESETS:  # stored before the field
                data[key] = getattr(PRESETS[data["name"]], key)
        unet_known = {f.name for f in dataclasses.fields(UNetConfig)}
        _check(not (set(unet) - unet_known), f"unknown U-Net keys: {sorted(set(unet) - unet_known)}")
        return cls(unet=UNetConfig(**unet), **data)

    @classmethod
    def from_json(cls, text: str) -> "Preset":
        return cls.from_dict(json.loads(text))


# Spleeter's 2-stem model (Hennequin et al., "Spleeter: a fast and efficient music
# source separation tool with pre-trained models", JOSS 2020; Deezer, MIT
# license), as its 2stems.json and spleeter/model code define it.  The same
# U-Net family as the paper; where it departs from Jansson et al. (2017):
SPLEETER = Preset(
    name="spleeter",
    sample_rate=44100,  # paper: 8192 Hz
    n_fft=4096,  # paper: 1024
    hop=1024,  # paper: 768
    bins=1024,  # 0-11 kHz; paper: 512 bins, 0-4 kHz
    patch_frames=512,  # paper: 128 (11.9 s here)
    unet=UNetConfig(
        in_channels=2,  # the stereo channels are the network's input channels; paper: mono
        out_channels=2,  # one mask per channel
        input_norm="none",  # the raw magnitude; paper: normalised to [0, 1]
        padding="tf_same",  # TensorFlow "same" padding: 1 before, 2 after
        decoder_order="act_bn",  # deconv -> ReLU -> BatchNorm; paper: BatchNorm before ReLU
        skip_tap="conv",  # skips and bottleneck carry the encoder's pre-BatchNorm conv output
        final="dilated_conv",  # last deconv to 1 channel, then a 4x4 dilated conv to 2 sigmoid masks
        bn_eps=1e-3,  # TensorFlow's BatchNorm epsilon
        batch_stats=False,  # its BatchNorm statistics are 0 and 1: trained as fixed affine maps
    ),
    # one network per stem, masks from the squared *outputs* (mask x mixture):
    # (out^2 + eps/2) / (out_v^2 + out_a^2 + eps); paper: each mask on its own
    combine="ratio2",
    combine_on="output",
    fullband="bandlimited",  # the masks apply to the STFT they came from (44.1 kHz, no interpolation)
    high_band="zero",  # 2stems.json's mask_extension "zeros": nothing above 11 kHz in either stem
    segment_frames=1024,  # two patches (23.7 s) per segment of long inputs
    framing="spleeter",  # Spleeter's STFT (n_fft zeros in front, frames from the start, inverse x 2/3)
    channel_mode="stereo",
    split_patches=True,  # the network sees 512-frame patches, the last zero-padded, as in Spleeter
    # not Spleeter's: bfloat16 networks where the CPU has bfloat16 instructions, else float32
    precision="auto",
)

# The shipped default's processing: Spleeter's network, STFT and patches; the two stems' masks are
# the ratio of the networks' output spectrograms, |v| / (|v| + |a|) (Spleeter squares them: ratio2),
# and the band above the modelled 11 kHz gets each mask's mean over its top 1 kHz (Spleeter: zeros).
# A multichannel Wiener filter of one EM iteration refines the stems, from the masks to the power 0.7
# (softer first estimates): chosen on MUSDB18's validation tracks (docs/experiments/wiener-power.md).
SPLEETER_RATIO = replace(SPLEETER, name="spleeter-ratio", combine="ratio", high_band="edge", wiener=1, wiener_power=0.7)

# The paper's network and spectrogram with half its hop: 384 samples (47 ms)
# instead of 768, so frames overlap by 62.5 % instead of 25 %: a finer time grid
# of masks, at twice the network work per second of audio (the "fine" model's
# preset).  With half the hop the inverse STFT of the masked 8192 Hz
# spectrogram overlaps its frames enough to rebuild it, so the full-band rule
# is "bandlimited".
JANSSON2017_HOP384 = Preset(
    name="jansson2017-hop384",
    hop=384,  # paper: 768
    patch_frames=128,  # 6 s at this hop (paper: 12 s at 768)
    segment_frames=640,  # 30 s, as jansson2017's 320 frames at 768
    fullband="bandlimited",  # jansson2017: interpolate
)

# The paper's U-Net on a full-rate stereo spectrogram: Spleeter's STFT resolution (44.1 kHz, window
# 4096, hop 1024, the lowest 1024 bins: 0-11 kHz) with the paper's layers, the two channels of a
# stereo signal as the network's two input channels (and its two masks).
JANSSON2017_44K = Preset(
    name="jansson2017-44k",
    sample_rate=44100,  # paper: 8192 Hz
    n_fft=4096,  # paper: 1024
    hop=1024,  # paper: 768
    bins=1024,  # 0-11 kHz; paper: 512 bins, 0-4 kHz
    patch_frames=256,  # 5.9 s
    unet=UNetConfig(in_channels=2, out_channels=2),
    fullband="bandlimited",  # the masks apply to the STFT they came from
    segment_frames=1280,  # 30 s
    channel_mode="stereo",
)

PRESETS: dict[str, Preset] = {
    "jansson2017": Preset(),
    "jansson2017-hop384": JANSSON2017_HOP384,
    "jansson2017-44k": JANSSON2017_44K,
    "spleeter": SPLEETER,
    "spleeter-ratio": SPLEETER_RATIO,
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None
