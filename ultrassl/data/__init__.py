"""The data layer: manifests, indexing, split files, plane names, datasets and the data module.

Modules: :mod:`~ultrassl.data.manifest` (the manifest CSV), :mod:`~ultrassl.data.indexing`
(folders of clips into manifests), :mod:`~ultrassl.data.splits` (official UCF101/HMDB51
split files), :mod:`~ultrassl.data.planes` (the standard planes' class names),
:mod:`~ultrassl.data.datasets` (:class:`ManifestDataset`), :mod:`~ultrassl.data.pipeline`
(what the data module asks of a pipeline) and :mod:`~ultrassl.data.datamodule`. Per-frame
annotation sidecars are read by :mod:`ultrassl.transforms.annotations`.
"""
