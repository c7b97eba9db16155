"""Evaluation suite: rate–distortion, rate–cognition and β trade-off of any codec.

``compressai-rdc eval`` (:mod:`compressai_rdc.cli.eval`) in one picture::

    --dataset NAME=DIR ─► protocol (full | crop256) ─► cached 8-bit inputs
    --codec jpeg/webp/avif, --compressai ARCH, --model NAME ─► codecs × operating points
    runner: encode ─► real bytes (bpp) ─► decode ─► metrics (PSNR, MS-SSIM, FSIM)
                                                 └► task (top-1/top-5, mAP, mIoU)
    outputs: JSON (CompressAI eval_model layout), CSV, BD tables, plots

Modules: :mod:`~compressai_rdc.eval.spec` (the spec grammar),
:mod:`~compressai_rdc.eval.protocol`, :mod:`~compressai_rdc.eval.codecs`,
:mod:`~compressai_rdc.eval.metrics`, :mod:`~compressai_rdc.eval.runner`,
:mod:`~compressai_rdc.eval.bd`, :mod:`~compressai_rdc.eval.plots`,
:mod:`~compressai_rdc.eval.outputs`, :mod:`~compressai_rdc.eval.distributed`.
"""

from compressai_rdc.eval.bd import bd_table
from compressai_rdc.eval.build import build_codecs, build_dataset
from compressai_rdc.eval.codecs import Codec, LearnedCodec, PillowCodec, Uncompressed
from compressai_rdc.eval.metrics import compute_metrics
from compressai_rdc.eval.runner import DatasetConfig, EvalResults, PointResult, run_evaluation
from compressai_rdc.eval.spec import OperatingPoint, parse_dataset, parse_spec

__all__ = [
    "Codec",
    "DatasetConfig",
    "EvalResults",
    "LearnedCodec",
    "OperatingPoint",
    "PillowCodec",
    "PointResult",
    "Uncompressed",
    "bd_table",
    "build_codecs",
    "build_dataset",
    "compute_metrics",
    "parse_dataset",
    "parse_spec",
    "run_evaluation",
]
