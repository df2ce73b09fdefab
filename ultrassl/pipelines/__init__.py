"""Data recipes: the transform chains each objective or task needs (see :mod:`.base`).

Import from the submodules (:mod:`ultrassl.pipelines.base`, ``.order_geometry``, ...); this
package re-exports nothing, so that YAML ``class_path`` entries name one place.
"""
