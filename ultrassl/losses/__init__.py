"""Losses of the self-supervised objectives, one small module per loss."""
