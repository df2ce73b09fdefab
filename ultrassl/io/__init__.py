"""Readers: files in, uint8 frames (T, H, W, C) with timing, spacing and safe metadata out."""

from ultrassl.io.registry import get_reader, probe_clip, read_clip, readers
from ultrassl.io.types import Clip, ClipInfo

__all__ = ["Clip", "ClipInfo", "get_reader", "probe_clip", "read_clip", "readers"]
