"""The standard planes of the fetal ultrasound examination, as class names in label order.

SonoNet's 13 planes (Baumgartner et al., IEEE TMI 2017) after ``"Background"`` (label 0):
the default class list of plane detection and the labels the embedded simulator writes
(:mod:`ultrassl.synth.fetal_sweep` renders exactly these planes).
"""

from __future__ import annotations

#: label 0: a frame that shows no standard plane
BACKGROUND = "Background"

#: the standard planes, in SonoNet's order
STANDARD_PLANE_NAMES: tuple[str, ...] = (
    "3VV", "4CH", "Abdominal", "Brain (Cb.)", "Brain (Tv.)", "Femur", "Kidneys", "Lips", "LVOT", "Profile", "RVOT",
    "Spine (cor.)", "Spine (sag.)",
)

#: class list in label order: Background first, then the planes
PLANE_CLASSES: tuple[str, ...] = (BACKGROUND,) + STANDARD_PLANE_NAMES
