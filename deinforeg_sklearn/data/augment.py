"""Per-sample image augmentation during ``fit`` (never at predict).

Invariant: every random parameter (crop offset, flip, jitter factors, the transform's own
draws) is drawn per sample, never once per batch. A torchvision transform called on a batch
tensor draws one set of parameters for the whole batch (one crop for 128 images), so a user's
callable is applied image by image unless it is wrapped in :class:`PerBatch`, which promises
that it draws per sample on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PerBatch:
    """A batch transform that already draws its random parameters per sample.

    ``augment=PerBatch(fn)`` calls ``fn`` once on each (N, C, H, W) training batch instead of
    once per image, which is faster. Only wrap functions that draw per sample (as
    :func:`random_crop_flip` does); a torchvision transform does not.

    Parameters
    ----------
    transform : callable
        Maps a float batch (N, C, H, W) to a batch of the same shape.
    """

    transform: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform(x)


@dataclass(frozen=True)
class EachSample:
    """Apply ``transform`` to each image of a batch on its own (so it draws per image)."""

    transform: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.transform(img) for img in x])


def random_crop_flip(x: torch.Tensor) -> torch.Tensor:
    """Random crop after zero padding of H/8 pixels, and horizontal flip, drawn per sample.

    The padding is 4 pixels on 32 x 32 images, as in the paper's runs. Vectorised over the
    batch: one gather instead of a Python loop per image.
    """
    n, _, height, width = x.shape
    pad = max(1, round(height / 8))
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
    rows = (dy + torch.arange(height, device=x.device)).view(n, 1, height, 1)
    cols = (dx + torch.arange(width, device=x.device)).view(n, 1, 1, width)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chan = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    cropped = padded[batch, chan, rows, cols]
    flip = torch.rand(n, device=x.device) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), cropped.flip(-1), cropped)


def _colour(channels: int) -> Callable[[torch.Tensor], torch.Tensor]:
    # torchvision is imported here, not with the package: importing it costs about a second
    # (it pulls in torch._dynamo), paid by every fit's process and every spawned stage, and only
    # augment="strong" needs it. It is an optional dependency (the "vision" extra).
    try:
        from torchvision.transforms import v2
    except ImportError as exc:
        raise ImportError(
            'augment="strong" needs torchvision for its colour jitter: install it with '
            "pip install 'deinforeg-sklearn[vision]' (or use augment=\"basic\", which does not)."
        ) from exc

    if channels == 3:
        return v2.Compose(
            [
                v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                v2.RandomGrayscale(p=0.2),
            ]
        )
    # Saturation, hue and grayscale mean nothing for one channel: jitter brightness and contrast.
    return v2.RandomApply([v2.ColorJitter(0.4, 0.4)], p=0.8)


@dataclass(frozen=True)
class StrongAugment:
    """ "strong": crop and flip, then colour jitter and grayscale per image, in the data's range.

    Colour jitter is defined on images in [0, 1] and clamps to it. The data's own range
    ``(low, high)`` (measured on the training rows) is mapped onto [0, 1] for the jitter and
    back, so 0-255 or standardised images keep their scale: jittered values stay inside the
    range the training data spans, which is the clamp torchvision applies to [0, 1] images.
    """

    colour: Callable[[torch.Tensor], torch.Tensor]
    low: float
    high: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = random_crop_flip(x)
        if self.high <= self.low:  # constant images: there is no colour to jitter
            return x
        scale = self.high - self.low
        unit = ((x - self.low) / scale).clamp(0.0, 1.0)
        return EachSample(self.colour)(unit) * scale + self.low


def make_augmenter(
    augment: str | Callable | None,
    input_shape: tuple[int, ...],
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The batch transform for the estimator's ``augment`` parameter.

    Parameters
    ----------
    augment : {"basic", "strong"}, callable or None
        "basic": random crop with padding + horizontal flip. "strong": basic, then colour
        jitter (p=0.8) and random grayscale (p=0.2), as in the paper's vision runs. A
        callable (e.g. a torchvision v2 transform) is applied to each (C, H, W) image of a
        training batch, so that its random parameters are drawn per image; wrap it in
        :class:`PerBatch` if it draws per sample on a whole batch.
    input_shape : tuple of int
        Shape of one sample; augmentation needs (channels, height, width).
    value_range : (float, float)
        Smallest and largest value of the training data ("strong" jitters within it).

    Raises
    ------
    ValueError
        The samples are not images.
    ImportError
        "strong" without torchvision.
    """
    if augment is None:
        return None
    if len(input_shape) != 3:
        raise ValueError(
            f"augment={augment!r} needs image input: set input_shape=(channels, height, width) "
            f"(the data have sample shape {input_shape})."
        )
    if isinstance(augment, PerBatch):
        return augment
    if callable(augment):
        return EachSample(augment)
    if augment == "basic":
        return random_crop_flip
    low, high = value_range
    return StrongAugment(_colour(input_shape[0]), float(low), float(high))
