"""Data recipe of saliency prediction (sonographer gaze).

Items as in :mod:`ultrassl.pipelines.annotated_frames`, with the gaze fixations of their
frames (``clip_fixations`` ``(T, K, 2)``, ``clip_fixations_valid`` ``(T, K)``), moved to pixels
of the resized frame by :class:`~ultrassl.transforms.fixations.ResizeFixationsd`; the model
predicts the centre frame's. No spatial augmentation: it would have to move the gaze too.
"""

from __future__ import annotations

from typing import Any

from monai.transforms import Transform

from ultrassl.transforms.annotations import MAX_FIXATIONS_PER_FRAME, LoadFrameAnnotationsd
from ultrassl.pipelines.annotated_frames import AnnotatedFramesPipeline
from ultrassl.transforms.fixations import ResizeFixationsd


class SaliencyPipeline(AnnotatedFramesPipeline):
    """Frames (or short clips around them) with their gaze fixations.

    Args:
        clip_frames: frames per item (1 for frame backbones).
        clip_stride: frames between consecutive frames of an item.
        max_fixations: K, fixations kept per frame (more raise; see ``LoadFrameAnnotationsd``).
        intensity_prob: probability of a brightness/contrast/gamma jitter per training item.
        **kwargs: options of :class:`AnnotatedFramesPipeline` and :class:`ClipPipeline`.
    """

    def __init__(self, max_fixations: int = MAX_FIXATIONS_PER_FRAME, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_fixations = int(max_fixations)

    def annotation_steps(self) -> list[Transform]:
        """Fixations of the sampled frames, moved to pixels of the resized frame."""
        return [
            LoadFrameAnnotationsd("clip", frame_labels_key=None, fixations_key="fixations",
                                  max_fixations=self.max_fixations),
            ResizeFixationsd("clip", self.size),
        ]
