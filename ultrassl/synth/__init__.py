"""Synthetic data that ships with ultrassl, written as real files so that it goes through the
same readers as clinical and natural video.

* :func:`synthesize_fetal_sweeps`: simulated fetal ultrasound sweeps (multi-frame DICOM and
  H.264 mp4) with per-frame standard-plane labels and simulated sonographer gaze.
* :func:`synthesize_motion`: UCF101-style clips of textured objects whose classes differ only
  in the direction of time, with a sound track that follows the motion.
"""

from ultrassl.synth.fetal_sweep import (
    BACKGROUND,
    PLANE_CLASSES,
    STANDARD_PLANES,
    plan_fetal_sweeps,
    render_sweep,
    synthesize_fetal_sweeps,
)
from ultrassl.synth.motion import MOTION_CLASSES, MOTION_PAIRS, synthesize_motion

__all__ = [
    "BACKGROUND",
    "MOTION_CLASSES",
    "MOTION_PAIRS",
    "PLANE_CLASSES",
    "STANDARD_PLANES",
    "plan_fetal_sweeps",
    "render_sweep",
    "synthesize_fetal_sweeps",
    "synthesize_motion",
]
