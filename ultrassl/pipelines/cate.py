"""Data recipe of CATE pretraining (METHODS.md section 4): CVRL's views, drawn per clip.

The augmentation is CVRL's (:class:`~ultrassl.pipelines.cvrl.CVRLPipeline`): a start gap
from :class:`~ultrassl.transforms.temporal.PairSampler`, a random resized crop, a flip,
colour (natural) or intensity (ultrasound) jitter, the asymmetric blur and solarisation. CATE's
encodings are built from the recorded draws (``"view{1,2}_params"`` ``temporal``,
``resized_crop``, ``flip``), which describe a clip only when one draw covers all its
frames, so per-frame augmentation is refused. CATE's speed encoding needs the two views to
play at different speeds: give ``strides`` (e.g. ``[1, 2, 4]``, one draw per view); with the
one fixed ``stride`` every pair plays at the same speed and the encoding is always 0.
"""

from __future__ import annotations

from typing import Any

from ultrassl.pipelines.cvrl import CVRLPipeline


class CATEPipeline(CVRLPipeline):
    """CVRL's two strongly augmented views, always clip-consistent.

    Args:
        **kwargs: the options of :class:`~ultrassl.pipelines.cvrl.CVRLPipeline`;
            ``per_frame`` must stay False.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        if self.per_frame:
            raise ValueError("CATE encodes one draw per clip; per_frame augmentation cannot be encoded")
