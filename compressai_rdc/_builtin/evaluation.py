"""Built-in plugin: machine tasks and the ``eval`` command."""

from __future__ import annotations

from compressai_rdc.hookspecs import hookimpl


@hookimpl
def register_tasks(register):
    from compressai_rdc.tasks.classification import ClassificationTask
    from compressai_rdc.tasks.detection import DetectionTask
    from compressai_rdc.tasks.segmentation import SegmentationTask

    register("classification", ClassificationTask, description="top-1/top-5 of a timm classifier (default tf_efficientnet_lite0)")
    register("detection", DetectionTask, description="box mAP of a torchvision detector (COCO-format annotations)")
    register("segmentation", SegmentationTask, description="mIoU of a torchvision segmentation network (images/ + masks/)")


def _run_eval(args):
    from compressai_rdc.cli import eval as eval_cli

    return eval_cli.run(args)


def _configure_eval(parser):
    from compressai_rdc.cli import eval as eval_cli

    eval_cli.configure(parser)


@hookimpl
def register_commands(register):
    register(
        "eval",
        _configure_eval,
        run=_run_eval,
        help="rate-distortion / rate-cognition evaluation with JSON, CSV, BD tables and plots",
    )
