"""Does a loop look like the grey B-mode ultrasound the models were trained on?

A model answers for any input: on a cartoon video a plane detector still says "LVOT,
p = 0.97". The page therefore says when the frame in view is unlike B-mode, from three facts
a sonographer would see at a glance: colour inside the scan sector (Doppler, or not
ultrasound), no scan sector (speckle that changes over the loop, found by
:class:`~ultrassl.transforms.ultrasound.LoopSector`), and flat areas where B-mode has
speckle. These are heuristics about the input, not a measure of the model's uncertainty;
written here because no library of the field checks "is this B-mode".
"""

from __future__ import annotations

import cv2
import numpy as np

#: mean colour difference between channels inside the sector (grey levels) above which a frame is colour
MAX_CHROMA = 10.0
#: smallest share of the frame a scan sector covers
MIN_SECTOR_SHARE = 0.15
#: largest share of the sector whose 3 x 3 neighbourhood is flat (standard deviation below 1.5 grey levels)
MAX_FLAT_SHARE = 0.6


def bmode_doubts(frame: np.ndarray, sector: np.ndarray | None) -> list[str]:
    """Reasons the frame ``(H, W, C)`` uint8, with its scan sector ``(H, W)`` bool (None: not
    found), does not look like grey B-mode; empty when it does."""
    image = np.asarray(frame, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    inside = np.ones(image.shape[:2], bool) if sector is None else np.asarray(sector, bool)
    reasons = []
    if sector is None or inside.mean() < MIN_SECTOR_SHARE:
        reasons.append("no scan sector was found")
    if not inside.any():
        return reasons
    if image.shape[-1] == 3:
        chroma = np.abs(image[..., 0] - image[..., 1]) + np.abs(image[..., 1] - image[..., 2])
        if float(chroma[inside].mean()) > MAX_CHROMA:
            reasons.append("it is in colour (Doppler, or not ultrasound), the models saw grey B-mode")
    grey = image.mean(axis=-1)
    mean, square = cv2.blur(grey, (3, 3)), cv2.blur(grey * grey, (3, 3))
    flat = np.sqrt(np.maximum(square - mean * mean, 0.0)) < 1.5
    if float(flat[inside].mean()) > MAX_FLAT_SHARE:
        reasons.append("large areas are flat where B-mode has speckle")
    return reasons
