"""Gaze fixations moved with their resized frame."""

from __future__ import annotations

import torch

from ultrassl.transforms.fixations import ResizeFixationsd, scale_fixations


def test_scale_fixations_keeps_pixel_edges_and_centres():
    moved = scale_fixations(torch.tensor([[-0.5, -0.5], [3.5, 1.5], [1.5, 0.5]]), (2, 4), (4, 8))
    expected = torch.tensor([[-0.5, -0.5], [7.5, 3.5], [3.5, 1.5]])
    assert torch.allclose(moved, expected)


def test_resize_fixations_moves_the_valid_points_and_keeps_padding_at_zero():
    clip = torch.zeros(1, 2, 4, 8)
    points = torch.tensor([[[3.5, 1.5], [9.0, 9.0]], [[-0.5, -0.5], [0.0, 0.0]]])
    valid = torch.tensor([[True, False], [True, False]])
    out = ResizeFixationsd("clip", (8, 16))({"clip": clip, "clip_fixations": points, "clip_fixations_valid": valid})
    assert torch.allclose(out["clip_fixations"][:, 0], torch.tensor([[7.5, 3.5], [-0.5, -0.5]]))
    assert not out["clip_fixations"][:, 1].any()
