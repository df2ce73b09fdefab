"""What the data module asks of a pipeline: the transform chains of training and validation.

The protocol lives here, below the recipes of :mod:`ultrassl.pipelines`, so that the data
module (:class:`~ultrassl.data.datamodule.ManifestDataModule`) needs no recipe to run one.
"""

from __future__ import annotations

from monai.transforms import Compose


class Pipeline:
    """Builds the transform chains of one objective or task.

    Subclasses implement :meth:`train_transform` and :meth:`val_transform`; both return a
    fresh :class:`~monai.transforms.Compose` on every call (the data module seeds it per item).
    """

    def train_transform(self) -> Compose:
        """The chain applied to training items."""
        raise NotImplementedError

    def val_transform(self) -> Compose:
        """The chain applied to validation and test items (deterministic given its seed)."""
        raise NotImplementedError
