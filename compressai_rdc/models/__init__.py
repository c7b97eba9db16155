"""Codec architectures (no weight locations here; see :mod:`compressai_rdc.zoo`)."""

from compressai_rdc.models.rdc import PrimaryBranch, RDCVersatile
from compressai_rdc.models.residual import ResidualScalableBranch

__all__ = ["PrimaryBranch", "RDCVersatile", "ResidualScalableBranch"]
from compressai_rdc.models.hevrc import HEVRC  # noqa: E402
from compressai_rdc.models.rdc_qmap import RDCQmap  # noqa: E402

__all__ += ["HEVRC", "RDCQmap"]
