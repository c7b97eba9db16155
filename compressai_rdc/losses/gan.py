"""Conditional GAN of HEVRC's third training stage (Electronics 2023, §3.3 and §4.2).

The decoder f_d is the generator; a discriminator D judges an image together
with its condition, the quality map q and the quantised latent ŷ (HEVRC eqs.
13–14, ``D(f_d(ŷ, ẑ), ŷ, q)``; the ``hevrc-stage3`` recipe conditions on both;
conditioning on ŷ as in HiFiC, Mentzer et al. 2020)::

    ŷ (B, M, h, w) ─1×1 conv─> (B, c, h, w) ─nearest ×(H/h)─┐
    q (B, 1, H, W) ─────────────────────────────────────────┼─ concat ─> PatchGAN convs ─> logits (B, 1, H/16, W/16)
    image (B, 3, H, W) ─────────────────────────────────────┘

Non-saturating losses (Goodfellow et al. 2014), with ``D = sigmoid(logits)``::

    generator      L_GAN = -log D(x̂, c)                    = softplus(-logits_fake)
    discriminator  L_D   = -log(1 - D(x̂, c)) - log D(x, c)  = softplus(logits_fake) + softplus(-logits_real)

:class:`GANLoss` is the generator term used inside a composite loss; it owns
the discriminator, and the trainer calls :meth:`GANLoss.discriminator_loss`
for the alternating D step (on a detached x̂).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.losses.base import Loss, get_output, per_sample_mean, reconstruction, result


def generator_loss(logits_fake: Tensor) -> Tensor:
    """Non-saturating generator loss ``-log sigmoid(logits)`` per sample ``(B,)``."""
    return per_sample_mean(F.softplus(-logits_fake.float()))


def discriminator_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """``-log sigmoid(real) - log(1 - sigmoid(fake))`` per sample ``(B,)``."""
    return per_sample_mean(F.softplus(-logits_real.float())) + per_sample_mean(F.softplus(logits_fake.float()))


class ConditionalDiscriminator(nn.Module):
    """PatchGAN discriminator conditioned on a quality map and/or a latent.

    Args:
        qmap_channels: channels of the quality-map condition (1; 0 = none).
        latent_channels: channels M of ŷ (0 = not conditioned on the latent).
        latent_embed: channels the latent is projected to before upsampling.
        width: channels of the first conv; doubled at each of the 4 stride-2 stages (capped at 8×).
    """

    def __init__(self, qmap_channels: int = 1, latent_channels: int = 0, latent_embed: int = 12, width: int = 64):
        super().__init__()
        self.qmap_channels, self.latent_channels = int(qmap_channels), int(latent_channels)
        self.latent_proj = nn.Conv2d(latent_channels, latent_embed, 1) if latent_channels else None
        cin = 3 + self.qmap_channels + (latent_embed if latent_channels else 0)
        layers = []
        widths = [width * min(2**i, 8) for i in range(4)]
        for i, w in enumerate(widths):
            layers += [nn.utils.spectral_norm(nn.Conv2d(cin, w, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
            cin = w
        layers += [nn.Conv2d(cin, 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, image: Tensor, qmap: Optional[Tensor] = None, latent: Optional[Tensor] = None) -> Tensor:
        """Patch logits ``(B, 1, H/16, W/16)`` for ``image (B, 3, H, W)``."""
        parts = [image]
        h, w = image.shape[-2:]
        if self.qmap_channels:
            if qmap is None:
                raise InvalidArgumentError("this discriminator is conditioned on a quality map: pass qmap (B, 1, H, W)")
            parts.append(qmap.to(image.dtype))
        if self.latent_proj is not None:
            if latent is None:
                raise InvalidArgumentError("this discriminator is conditioned on the latent: the model output needs 'y_hat'")
            if latent.shape[1] != self.latent_proj.in_channels:
                raise InvalidArgumentError(
                    f"the discriminator is conditioned on a latent of {self.latent_proj.in_channels} channels "
                    f"(gan latent_channels), but the model's y_hat has {latent.shape[1]}: set latent_channels to M"
                )
            parts.append(F.interpolate(self.latent_proj(latent.to(image.dtype)), size=(h, w), mode="nearest"))
        return self.net(torch.cat(parts, dim=1))


class GANLoss(Loss):
    """Generator side of the conditional non-saturating GAN; owns the discriminator.

    Args:
        condition: what the discriminator sees besides the image: any of
            ``"qmap"`` (``batch["qmap"]``) and ``"latent"`` (``output["y_hat"]``).
        latent_channels: M of ŷ when conditioning on the latent.
        width: discriminator width.
        x_hat_key: output entry holding the generated image.
    """

    def __init__(self, condition: Sequence[str] = ("qmap",), latent_channels: int = 0, width: int = 64, x_hat_key: str = "x_hat"):
        super().__init__()
        bad = set(condition) - {"qmap", "latent"}
        if bad:
            raise InvalidArgumentError(f"gan condition {sorted(bad)} is invalid; valid: 'qmap', 'latent'")
        if "latent" in condition and latent_channels <= 0:
            raise InvalidArgumentError("gan condition 'latent' needs latent_channels = M of the model's ŷ")
        self.condition = tuple(condition)
        self.discriminator = ConditionalDiscriminator(
            qmap_channels=1 if "qmap" in condition else 0,
            latent_channels=latent_channels if "latent" in condition else 0,
            width=width,
        )
        self.x_hat_key = x_hat_key

    def _logits(self, image: Tensor, output: Mapping[str, Any], batch: Mapping[str, Any]) -> Tensor:
        qmap = batch.get("qmap") if "qmap" in self.condition else None
        if "qmap" in self.condition and qmap is None:
            raise InvalidArgumentError("gan loss conditioned on 'qmap' needs batch['qmap'] (B, 1, H, W)")
        latent = get_output(output, "y_hat", "gan").detach() if "latent" in self.condition else None
        return self.discriminator(image, qmap, latent)

    def forward(self, output: Mapping[str, Any], target: Tensor, **batch: Any) -> Dict[str, Tensor]:
        x_hat = reconstruction(output, self.x_hat_key, target, "gan")
        return result(generator_loss(self._logits(x_hat, output, batch)))

    def discriminator_loss(self, output: Mapping[str, Any], target: Tensor, **batch: Any) -> Dict[str, Tensor]:
        """The D step's loss on real ``target`` and detached fake ``output[x_hat_key]``."""
        fake = get_output(output, self.x_hat_key, "gan").detach()
        lf = self._logits(fake, output, batch)
        lr = self._logits(target, output, batch)
        per = discriminator_loss(lr, lf)
        with torch.no_grad():
            acc = ((lr > 0).float().mean() + (lf < 0).float().mean()) / 2
        return result(per, d_accuracy=acc)


__all__ = ["ConditionalDiscriminator", "GANLoss", "discriminator_loss", "generator_loss"]
