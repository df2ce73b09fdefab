"""The data layer: manifests, split files, per-frame annotations and datasets.

Modules: :mod:`~ultrassl.data.manifest` (the manifest CSV), :mod:`~ultrassl.data.splits`
(official UCF101/HMDB51 split files), :mod:`~ultrassl.data.annotations` (per-frame label
and gaze sidecars) and :mod:`~ultrassl.data.datasets` (:class:`ManifestDataset`).
"""
