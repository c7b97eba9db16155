"""Training losses of compressai-rdc, one module per concept.

=====================  =========================================================
module                 losses
=====================  =========================================================
``rate``               :class:`RateLoss` (bpp from likelihoods)
``distortion``         :class:`MSELoss`, :class:`WeightedMSELoss` (quality-map λ),
                       :class:`LocalMSELoss` (RDC's pooled MSE + range penalty)
``cognition``          :class:`MoCoCognitionLoss` (RDC's MoCo InfoNCE with a queue),
                       :class:`LogitDistillationLoss` (KL between the classifier's outputs)
``sfm``                :class:`SFMLoss` (HEVRC's semantic feature matching),
                       :class:`FeatureMSELoss` (Adapt-ICMH's multi-stage feature MSE)
``gan``                :class:`GANLoss`, :class:`ConditionalDiscriminator` (HEVRC)
``composite``          :class:`CompositeLoss`, :func:`build_loss` (weights from a config)
=====================  =========================================================

Every loss is registered in :data:`compressai_rdc.LOSSES` (names ``rate``,
``mse``, ``weighted-mse``, ``local-mse``, ``moco-cognition``, ``logit-distillation``, ``sfm``, ``feature-mse``, ``gan``)
and follows the contract of :mod:`compressai_rdc.losses.base`.
"""

from compressai_rdc.losses.base import Loss
from compressai_rdc.losses.cognition import LogitDistillationLoss, MoCoCognitionLoss, info_nce
from compressai_rdc.losses.composite import CompositeLoss, build_loss
from compressai_rdc.losses.distortion import LocalMSELoss, MSELoss, WeightedMSELoss, psnr_from_mse
from compressai_rdc.losses.gan import ConditionalDiscriminator, GANLoss, discriminator_loss, generator_loss
from compressai_rdc.losses.rate import RateLoss, bits_per_pixel
from compressai_rdc.losses.sfm import FeatureMSELoss, SFMLoss

#: name -> (class, one-line description), registered by the built-in plugin
BUILTIN_LOSSES = {
    "rate": (RateLoss, "estimated bits per pixel from the entropy models' likelihoods"),
    "mse": (MSELoss, "mean squared error on the 8-bit scale (CompressAI's λ convention)"),
    "weighted-mse": (WeightedMSELoss, "per-pixel λ-weighted MSE from a quality map (QMAP2021, HEVRC)"),
    "local-mse": (LocalMSELoss, "MSE of k×k average-pooled images + [0, 1] range penalty (RDC)"),
    "moco-cognition": (MoCoCognitionLoss, "MoCo InfoNCE between frozen-backbone embeddings of x̂ and x (RDC)"),
    "logit-distillation": (LogitDistillationLoss, "T²·KL between a frozen classifier's outputs on x and on x̂ (task distillation)"),
    "sfm": (SFMLoss, "L1 between frozen-backbone feature maps of x̂ and x (HEVRC)"),
    "feature-mse": (FeatureMSELoss, "mean over backbone stages of the feature MSE between x̂ and x (Adapt-ICMH)"),
    "gan": (GANLoss, "conditional non-saturating GAN generator loss; owns the discriminator (HEVRC)"),
}

__all__ = [
    "BUILTIN_LOSSES",
    "CompositeLoss",
    "ConditionalDiscriminator",
    "GANLoss",
    "LocalMSELoss",
    "LogitDistillationLoss",
    "FeatureMSELoss",
    "Loss",
    "MSELoss",
    "MoCoCognitionLoss",
    "RateLoss",
    "SFMLoss",
    "WeightedMSELoss",
    "bits_per_pixel",
    "build_loss",
    "discriminator_loss",
    "generator_loss",
    "info_nce",
    "psnr_from_mse",
]
