"""Networks: the backbone registry (:mod:`ultrassl.models.backbones`) and shared heads."""
