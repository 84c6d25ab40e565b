"""Per-batch image augmentation during ``fit`` (never at predict)."""

from __future__ import annotations

from collections.abc import Callable

import torch


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
    # augment="strong" needs it.
    from torchvision.transforms import v2

    if channels == 3:
        return v2.Compose(
            [
                v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                v2.RandomGrayscale(p=0.2),
            ]
        )
    # Saturation, hue and grayscale mean nothing for one channel: jitter brightness and contrast.
    return v2.RandomApply([v2.ColorJitter(0.4, 0.4)], p=0.8)


def make_augmenter(
    augment: str | Callable | None, input_shape: tuple[int, ...]
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The batch transform for the estimator's ``augment`` parameter.

    "basic": random crop with padding + horizontal flip. "strong": basic, then colour jitter
    (p=0.8) and random grayscale (p=0.2) per image, as in the paper's vision runs. A callable
    (e.g. a torchvision v2 transform) is applied to each (N, C, H, W) float batch as it is.
    """
    if augment is None:
        return None
    if len(input_shape) != 3:
        raise ValueError(
            f"augment={augment!r} needs image input: set input_shape=(channels, height, width) "
            f"(the data have sample shape {input_shape})."
        )
    if callable(augment):
        return augment
    if augment == "basic":
        return random_crop_flip
    colour = _colour(input_shape[0])

    def strong(x: torch.Tensor) -> torch.Tensor:
        x = random_crop_flip(x)
        return torch.stack([colour(img) for img in x])

    return strong
