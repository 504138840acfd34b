"""Training the U-Nets: ``fit(TrainConfig(...))`` or ``vocalsep train``."""

from .config import Augment, TrainConfig

__all__ = ["Augment", "TrainConfig", "fit"]


def fit(config: TrainConfig):
    from .loop import fit as _fit

    return _fit(config)
