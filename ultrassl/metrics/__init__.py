"""Evaluation metrics: saliency (:mod:`ultrassl.metrics.saliency`) and classification and
retrieval (:mod:`ultrassl.metrics.classification`)."""
