"""Data recipe of standard plane detection (frame-level, SonoNet style).

Items as in :mod:`ultrassl.pipelines.annotated_frames`; the label is that of the centre
frame (:class:`~ultrassl.downstream.plane_detection.PlaneDetection` reads it from
``clip_frame_labels`` ``(T,)``, added by :class:`~ultrassl.transforms.annotations.LoadFrameAnnotationsd`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai.transforms import Transform

from ultrassl.data.planes import PLANE_CLASSES
from ultrassl.pipelines.annotated_frames import AllFramesSampler, AnnotatedFramesPipeline
from ultrassl.transforms.annotations import LoadFrameAnnotationsd
from ultrassl.transforms.spatial import RandAffineClipd

__all__ = ["AllFramesSampler", "PlaneDetectionPipeline", "read_class_names"]


def read_class_names(classes: Sequence[str] | str | os.PathLike | None) -> list[str]:
    """Class names in label order: a list as given, a text file with one name per line
    (e.g. the simulated data's ``planes.txt``), or None for Background + SonoNet's 13 planes."""
    if classes is None:
        return list(PLANE_CLASSES)
    if isinstance(classes, (str, os.PathLike)):
        path = Path(classes)
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if len(names) < 2:
            raise ValueError(f"{path}: a class list needs at least two names, one per line")
        return names
    return [str(c) for c in classes]


class PlaneDetectionPipeline(AnnotatedFramesPipeline):
    """Labelled frames (or short clips around them) for standard plane detection.

    Args:
        classes: class names in label order, a file of names, or None (Background + the 13
            SonoNet planes); sidecars naming classes are mapped through it.
        clip_frames: frames per item (1 for frame backbones; e.g. 4 for a 3D backbone).
        clip_stride: frames between consecutive frames of an item.
        intensity_prob: probability of a brightness/contrast/gamma jitter per training item.
        affine_prob: probability of a random affine per training item (0: none), drawn from
            ``rotate_range_deg`` (degrees, +-), ``scale_range`` (1 +- r) and ``translate_range``
            (fractions of the frame, +-); the item's frames share it.
        **kwargs: loading and finishing options of :class:`ClipPipeline` (``modality``,
            ``in_channels``, ``size``, ``mask_sector``, ``mean``, ``std`` ...).
    """

    def __init__(self, classes: Sequence[str] | str | None = None, affine_prob: float = 0.0,
                 rotate_range_deg: float = 0.0, scale_range: float = 0.0, translate_range: float = 0.0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if not 0.0 <= affine_prob <= 1.0:
            raise ValueError(f"affine_prob must lie in [0, 1], got {affine_prob}")
        self.classes = read_class_names(classes)
        self.affine = dict(rotate_range_deg=rotate_range_deg, scale_range=scale_range,
                           translate_range=translate_range, prob=affine_prob)
        # Built once here so that bad ranges fail when the config is read, not in a worker.
        self.augment_steps()

    def augment_steps(self) -> list[Transform]:
        """The intensity jitter and, with ``affine_prob``, one random rotation, scale and shift
        per item: a frame's plane does not change when the probe sits a little differently."""
        steps = super().augment_steps()
        if self.affine["prob"] > 0:
            steps.append(RandAffineClipd("clip", **self.affine))
        return steps

    def annotation_steps(self) -> list[Transform]:
        """Frame labels of the sampled frames (``clip_frame_labels``)."""
        return [LoadFrameAnnotationsd("clip", frame_labels_key="frame_labels", fixations_key=None, classes=self.classes)]
