"""Clip transforms: temporal samplers, loading, spatial, intensity and ultrasound-specific ones.

Import from the submodules (:mod:`ultrassl.transforms.temporal`, ``.io``, ``.spatial``,
``.intensity``, ``.per_frame``, ...); this package re-exports nothing.
"""
