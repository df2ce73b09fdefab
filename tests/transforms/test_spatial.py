"""Spatial clip transforms: one draw per clip, recorded, reproducible, aligned across keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.transforms import Affine, Compose, Flip, SpatialCrop
from torch.utils.data import DataLoader, Dataset

from ultrassl.transforms.per_frame import PerFrame
from ultrassl.transforms.spatial import (
    CenterCropClip,
    CenterCropClipd,
    RandAffineClip,
    RandAffineClipd,
    RandFlipClip,
    RandFlipClipd,
    RandResizedCropClip,
    RandResizedCropClipd,
    ResizeClip,
    ResizeClipd,
    affine_matrix,
    warp_frames,
)


def random_transforms():
    return [
        RandResizedCropClip((24, 20)),
        RandFlipClip(prob=1.0),
        RandFlipClip(prob=1.0, axis="vertical"),
        RandAffineClip(rotate_range_deg=30, scale_range=0.2, shear_range=0.2, translate_range=0.1, flip_prob=0.5),
        RandAffineClip(discrete_rotations=(0, 90, 180, 270), mode="nearest"),
    ]


def name(t):
    return type(t).__name__


def static_clip(channels=3, n_frames=6, height=32, width=40, seed=0):
    """A clip whose frames are all the same random image."""
    frame = torch.rand(channels, 1, height, width, generator=torch.Generator().manual_seed(seed))
    return frame.expand(channels, n_frames, height, width).clone()


def moving_clip(channels=3, n_frames=6, height=32, width=40, seed=0):
    return torch.rand(channels, n_frames, height, width, generator=torch.Generator().manual_seed(seed))


def blocks_clip(n_frames=4, height=48, width=48):
    """Large constant rectangles (few edges) that move one pixel per frame."""
    clip = torch.zeros(1, n_frames, height, width)
    for t in range(n_frames):
        clip[0, t, 8 + t : 24 + t, 6:30] = 0.9
        clip[0, t, 30:44, 20 + t : 44] = 0.7
    return clip


@pytest.mark.parametrize("transform", random_transforms(), ids=name)
def test_identical_frames_stay_identical(transform):
    clip = static_clip()
    for seed in range(5):
        out = transform.set_random_state(seed)(clip)
        assert out.dtype == torch.float32 and out.ndim == 4
        for t in range(1, out.shape[1]):
            torch.testing.assert_close(out[:, t], out[:, 0], rtol=0, atol=0)


@pytest.mark.parametrize("transform", random_transforms(), ids=name)
def test_apply_with_recorded_params_reproduces_the_output(transform):
    clip = moving_clip()
    out = transform.set_random_state(3)(clip)
    params = dict(transform.params)
    transform.set_random_state(99)(clip)  # another draw in between
    again = transform.apply(clip, params)
    assert torch.equal(again, out)


@pytest.mark.parametrize("transform", random_transforms()[:1] + random_transforms()[3:4], ids=name)
def test_same_seed_same_output_different_seed_different(transform):
    clip = moving_clip()
    first = transform.set_random_state(7)(clip)
    assert torch.equal(transform.set_random_state(7)(clip), first)
    assert not torch.equal(transform.set_random_state(8)(clip), first)


def dict_twins(mode):
    return [
        RandResizedCropClipd(("clip", "mask"), (24, 24), mode=mode),
        RandFlipClipd(("clip", "mask"), prob=1.0),
        RandAffineClipd(
            ("clip", "mask"), rotate_range_deg=40, scale_range=0.2, shear_range=0.2,
            translate_range=0.15, flip_prob=0.5, mode=mode,
        ),
    ]


@pytest.mark.parametrize("twin", dict_twins(("nearest", "nearest")), ids=name)
def test_dict_twin_moves_clip_and_mask_together_exactly(twin):
    clip = moving_clip(channels=1, n_frames=4, height=40, width=48)
    mask = clip > 0.6  # the clip's own bright pixels, as a boolean mask
    sample = {"clip": clip, "mask": mask, "label": 1}
    for seed in range(4):
        out = twin.set_random_state(seed)(sample)
        assert out["mask"].dtype == torch.bool
        assert torch.equal(out["mask"], out["clip"] > 0.6)
        name_ = twin.transform.name
        assert out["clip_params"][name_] == out["mask_params"][name_]
    assert set(sample) == {"clip", "mask", "label"}  # the input was not modified


@pytest.mark.parametrize("twin", dict_twins(("bilinear", "nearest")), ids=name)
def test_dict_twin_bilinear_clip_and_nearest_mask_stay_aligned(twin):
    clip = blocks_clip()
    mask = clip > 0.5
    for seed in range(4):
        out = twin.set_random_state(seed)(dict(clip=clip, mask=mask))
        assert out["mask"].dtype == torch.bool
        agreement = (out["mask"] == (out["clip"] > 0.5)).float().mean()
        assert agreement > 0.97  # they differ only along block edges


def test_static_mask_follows_a_clip_transform():
    clip = blocks_clip(n_frames=3)
    mask = clip[:, :1] > 0.5  # (1, 1, H, W)
    out = RandAffineClipd(("clip", "mask"), rotate_range_deg=45, mode=("nearest", "nearest")).set_random_state(0)(
        {"clip": clip, "mask": mask}
    )
    assert out["mask"].shape == (1, 1, 48, 48)
    assert torch.equal(out["mask"][:, 0], out["clip"][:, 0] > 0.5)


# --------------------------------------------------------------------------- affine


def test_affine_is_monai_affine_applied_to_each_frame():
    clip = moving_clip(n_frames=5)
    transform = RandAffineClip(rotate_range_deg=25, scale_range=0.3, shear_range=0.3, translate_range=0.2, flip_prob=0.5)
    for seed in range(3):
        out = transform.set_random_state(seed)(clip)
        forward = np.array(transform.params["matrix"]).reshape(3, 3)
        reference = Affine(affine=np.linalg.inv(forward), padding_mode="zeros", image_only=True)
        for t in range(clip.shape[1]):
            torch.testing.assert_close(out[:, t], reference(clip[:, t]).as_tensor(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("axis", ["horizontal", "vertical"])
def test_the_crop_and_the_flip_are_monai_spatial_crop_and_flip_on_every_frame(axis):
    clip = torch.rand(3, 5, 37, 50, generator=torch.Generator().manual_seed(0))
    crop = RandResizedCropClip((37, 50), scale=(0.1, 0.9))
    for seed in range(5):
        crop.set_random_state(seed)(clip)
        y0, x0, h, w = crop.params["box"]
        reference = SpatialCrop(roi_start=(y0, x0), roi_end=(y0 + h, x0 + w))(clip.reshape(15, 37, 50)).as_tensor()
        out = crop.apply(clip, crop.params, mode="nearest")  # back to (37, 50): the crop scaled up
        expected = F.interpolate(reference.unsqueeze(1), size=(37, 50), mode="nearest-exact").squeeze(1)
        assert torch.equal(out.reshape(15, 37, 50), expected)
    flipped = RandFlipClip(prob=1.0, axis=axis)(clip)
    expected = Flip(spatial_axis=0 if axis == "vertical" else 1)(clip.reshape(15, 37, 50)).as_tensor()
    assert torch.equal(flipped.reshape(15, 37, 50), expected)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_the_warp_is_monai_affine_bit_for_bit(mode, padding_mode):
    transform = RandAffineClip(rotate_range_deg=30, scale_range=0.3, shear_range=0.2, translate_range=0.2,
                               flip_prob=0.5)
    generator = torch.Generator().manual_seed(0)
    for seed, (height, width) in enumerate([(48, 60), (7, 3), (2, 2), (33, 64), (64, 33)]):
        transform.set_random_state(seed)
        params = transform.draw((1, 4, height, width), fire=seed != 3)  # seed 3: the identity
        inverse = np.linalg.inv(affine_matrix(params, (height, width)))
        stack = torch.rand(5, height, width, generator=generator)
        reference = Affine(affine=inverse, mode=mode, padding_mode=padding_mode, image_only=True)(stack)
        assert torch.equal(warp_frames(stack, inverse, mode, padding_mode), reference.as_tensor())


def _dot(row, col, size=(9, 9)):
    image = torch.zeros(1, 1, *size)
    image[0, 0, row, col] = 1.0
    return image


def _where(image):
    return [tuple(int(v) for v in p) for p in torch.nonzero(image[0, 0] > 0.5)]


def test_affine_geometry_follows_its_documented_conventions():
    params = {"rotation_deg": 90.0, "scale": 1.0, "shear": 0.0, "translate_x": 0.0, "translate_y": 0.0, "flipped": False}
    nearest = RandAffineClip(mode="nearest")
    # a point above the centre turns counter-clockwise (as displayed) to the left of it
    assert _where(nearest.apply(_dot(2, 4), {**params})) == [(4, 2)]
    # translation moves content down and right by fractions of the frame
    moved = nearest.apply(_dot(5, 5, (10, 10)), {**params, "rotation_deg": 0.0, "translate_x": 0.2, "translate_y": 0.1})
    assert _where(moved) == [(6, 7)]
    # scale > 1 enlarges content about the centre
    square = torch.zeros(1, 1, 16, 16)
    square[..., 6:10, 6:10] = 1.0
    assert nearest.apply(square, {**params, "rotation_deg": 0.0, "scale": 2.0}).sum() == 64
    # a flip alone is an exact mirror, even with bilinear interpolation
    clip = moving_clip()
    flipped = RandAffineClip().apply(clip, {**params, "rotation_deg": 0.0, "flipped": True})
    torch.testing.assert_close(flipped, clip.flip(-1), rtol=0, atol=1e-5)


def test_affine_records_raw_normalised_and_class():
    transform = RandAffineClip(
        rotate_range_deg=(-20, 40), scale_range=(0.5, 1.5), shear_range=0.1, translate_range=0.2, flip_prob=0.5
    )
    for seed in range(20):
        transform.set_random_state(seed)(moving_clip(n_frames=1))
        p = transform.params
        expected = [
            (p["rotation_deg"] + 20) / 60 * 2 - 1,
            (p["scale"] - 0.5) / 1.0 * 2 - 1,
            p["shear"] / 0.1,
            p["translate_x"] / 0.2,
            p["translate_y"] / 0.2,
            1.0 if p["flipped"] else -1.0,
        ]
        np.testing.assert_allclose(p["normalised"], expected, atol=1e-12)
        assert all(-1 <= v <= 1 for v in p["normalised"])
        assert p["class_index"] == -1
        np.testing.assert_allclose(p["matrix"], affine_matrix(p, (32, 40)).reshape(-1))

    discrete = RandAffineClip(discrete_rotations=(0, 90, 180, 270), mode="nearest")
    classes = set()
    for seed in range(30):
        out = discrete.set_random_state(seed)(_dot(1, 4))
        k = discrete.params["class_index"]
        classes.add(k)
        assert discrete.params["rotation_deg"] == 90.0 * k
        assert discrete.params["normalised"][0] == pytest.approx(k / 3 * 2 - 1)
        assert _where(out) == [[(1, 4), (4, 1), (7, 4), (4, 7)][k]]
    assert classes == {0, 1, 2, 3}


def test_affine_that_does_not_fire_records_the_identity():
    transform = RandAffineClip(rotate_range_deg=30, discrete_rotations=(0, 180), prob=0.0)
    clip = moving_clip()
    assert torch.equal(transform(clip), clip)
    p = transform.params
    assert not p["applied"] and p["rotation_deg"] == 0.0 and p["scale"] == 1.0 and p["class_index"] == 0
    np.testing.assert_allclose(p["matrix"], np.eye(3).reshape(-1))


# ---------------------------------------------------------------- resized crop


def test_resized_crop_box_statistics_and_record():
    transform = RandResizedCropClip((16, 16), scale=(0.3, 1.0), ratio=(0.5, 2.0))
    height, width = 60, 80
    clip = torch.zeros(1, 1, height, width)
    areas = []
    for seed in range(300):
        transform.set_random_state(seed)(clip)
        p = transform.params
        y0, x0, h, w = p["box"]
        assert 0 <= y0 and y0 + h <= height and 0 <= x0 and x0 + w <= width
        assert p["box_relative"] == [y0 / height, x0 / width, h / height, w / width]
        assert p["input_size"] == [height, width]
        if not p["fallback"]:
            areas.append(h * w / (height * width))
            assert 0.5 * 0.9 <= w / h <= 2.0 * 1.1  # up to rounding of small boxes
    areas = np.array(areas)
    assert 0.28 <= areas.min() < 0.35 and 0.9 < areas.max() <= 1.0


def test_resized_crop_output_is_crop_then_bilinear_resize():
    clip = moving_clip(n_frames=3, height=30, width=40)
    transform = RandResizedCropClip((12, 16)).set_random_state(4)
    out = transform(clip)
    y0, x0, h, w = transform.params["box"]
    crop = clip[:, :, y0 : y0 + h, x0 : x0 + w]
    reference = F.interpolate(crop, size=(12, 16), mode="bilinear", align_corners=False)
    assert out.shape == (3, 3, 12, 16)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)


def test_resized_crop_falls_back_to_a_central_crop():
    transform = RandResizedCropClip(8, scale=(0.9, 1.0), ratio=(3.0, 4.0)).set_random_state(0)
    transform(torch.zeros(1, 1, 32, 32))
    assert transform.params["fallback"]
    assert transform.params["box"] == [10, 0, 11, 32]  # width 32, height round(32 / 3), centred


# --------------------------------------------------------------------------- flips


def test_flip_directions_and_record():
    clip = moving_clip()
    assert torch.equal(RandFlipClip(1.0)(clip), clip.flip(-1))
    assert torch.equal(RandFlipClip(1.0, axis="vertical")(clip), clip.flip(-2))
    unflipped = RandFlipClip(0.0)
    assert torch.equal(unflipped(clip), clip)
    assert unflipped.params == {"applied": False, "flipped": False}
    draws = [RandFlipClip(0.5).set_random_state(s)(clip) for s in range(40)]
    assert 5 < sum(torch.equal(d, clip.flip(-1)) for d in draws) < 35


# ------------------------------------------------------------------------- per frame


def test_per_frame_draws_each_frame_independently():
    clip = static_clip(n_frames=16)
    transform = PerFrame(RandFlipClip(0.5)).set_random_state(0)
    out = transform(clip)
    flags = [p["flipped"] for p in transform.params["frames"]]
    assert transform.params["per_frame"] and len(flags) == 16 and 0 < sum(flags) < 16
    for t, flipped in enumerate(flags):
        assert torch.equal(out[:, t], clip[:, t].flip(-1) if flipped else clip[:, t])
    assert torch.equal(transform.apply(clip, transform.params), out)


def test_per_frame_affine_differs_per_frame_and_twin_keeps_masks_aligned():
    clip = static_clip(channels=1, n_frames=4, height=24, width=24)
    out = PerFrame(RandAffineClip(rotate_range_deg=45)).set_random_state(1)(clip)
    assert not torch.equal(out[:, 0], out[:, 1])
    twin = RandAffineClipd(("clip", "mask"), rotate_range_deg=45, mode="nearest", per_frame=True).set_random_state(2)
    result = twin({"clip": clip, "mask": clip > 0.5})
    assert torch.equal(result["mask"], result["clip"] > 0.5)
    assert len(result["mask_params"]["affine"]["frames"]) == 4
    with pytest.raises(ValueError, match="drew 4 frames"):
        twin({"clip": clip, "mask": clip[:, :1] > 0.5})


# ------------------------------------------------------------------- deterministic


def test_resize_clip_and_per_key_modes():
    clip = moving_clip(n_frames=3, height=20, width=30)
    out = ResizeClip((10, 12))(clip)
    reference = F.interpolate(clip, size=(10, 12), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)
    mask = (clip[:1] > 0.5).to(torch.uint8)
    result = ResizeClipd(("clip", "mask"), 16, mode=("bilinear", "nearest"))({"clip": clip, "mask": mask})
    assert result["clip"].shape == (3, 3, 16, 16) and result["mask"].shape == (1, 3, 16, 16)
    assert result["mask"].dtype == torch.uint8 and set(result["mask"].unique().tolist()) <= {0, 1}
    assert torch.equal(result["mask"], F.interpolate(mask.float(), size=(16, 16), mode="nearest-exact").to(torch.uint8))


def test_resize_antialias_matches_torch():
    clip = moving_clip(n_frames=2, height=40, width=40)
    reference = F.interpolate(clip, size=(10, 10), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(ResizeClip(10, antialias=True)(clip), reference, rtol=0, atol=1e-5)
    assert not torch.allclose(ResizeClip(10)(clip), reference, atol=1e-3)


def test_center_crop_clip():
    clip = moving_clip(height=20, width=30)
    assert torch.equal(CenterCropClip((10, 12))(clip), clip[..., 5:15, 9:21])
    assert torch.equal(CenterCropClipd("clip", (10, 12))({"clip": clip})["clip"], clip[..., 5:15, 9:21])
    with pytest.raises(ValueError, match="cannot take"):
        CenterCropClip(32)(clip)


def test_clip_rank_is_checked():
    with pytest.raises(ValueError, match=r"\(C, T, H, W\)"):
        RandFlipClip(1.0)(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match=r"\(C, T, H, W\)"):
        ResizeClip(8)(torch.zeros(3, 32, 32))


# ----------------------------------------------------------------------- collation


class _Clips(Dataset):
    def __init__(self, transform):
        self.transform = transform

    def __len__(self):
        return 4

    def __getitem__(self, i):
        clip = moving_clip(channels=1, n_frames=3, height=32, width=32, seed=i)
        return self.transform({"clip": clip, "mask": clip > 0.5})


def test_recorded_params_collate_in_a_dataloader_batch():
    keys = ("clip", "mask")
    transform = Compose(
        [
            RandResizedCropClipd(keys, 16, mode=("bilinear", "nearest")),
            RandFlipClipd(keys, prob=0.5),
            RandAffineClipd(keys, rotate_range_deg=20, flip_prob=0.5, prob=0.5, mode=("bilinear", "nearest")),
            RandFlipClipd(keys, prob=0.5, per_frame=True),
        ]
    ).set_random_state(0)
    batch = next(iter(DataLoader(_Clips(transform), batch_size=4)))
    assert batch["clip"].shape == (4, 1, 3, 16, 16)
    params = batch["clip_params"]
    assert len(params["resized_crop"]["box_relative"]) == 4 and params["resized_crop"]["box_relative"][0].shape == (4,)
    assert params["affine"]["normalised"][0].dtype == torch.float64
    assert params["affine"]["applied"].shape == (4,)
    assert params["flip"]["frames"][2]["flipped"].shape == (4,)
    # each sample's record still reproduces its own geometry
    for i in range(4):
        rel = [float(v[i]) for v in params["resized_crop"]["box_relative"]]
        assert all(0 <= v <= 1 for v in rel)
        assert rel[0] + rel[2] <= 1.0 + 1e-9 and rel[1] + rel[3] <= 1.0 + 1e-9
