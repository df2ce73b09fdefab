"""Scan-sector detection and probe geometry, on synthetic fans and on real DICOM cine loops."""

from __future__ import annotations

import cv2
import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_color_lut, pixel_array

from tests.media import burn_in_overlays, fan_mask, speckle_frames
from ultrassl.transforms.sector import DepthGeometry, depth_geometry, depth_map, detect_sector, spread_frame_indices

CURVILINEAR = {"apex_yx": (-10.0, 64.0), "radii": (20.0, 120.0), "half_angle_deg": 30.0}
PHASED = {"apex_yx": (4.0, 64.0), "radii": (0.0, 118.0), "half_angle_deg": 30.0}
LINEAR_TEXTS = (("ID", (4, 20)), ("R", (112, 60)), ("3cm", (106, 120)))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def linear_sector(height: int = 128, width: int = 128) -> np.ndarray:
    sector = np.zeros((height, width), dtype=bool)
    sector[6:122, 28:100] = True
    return sector


def synthetic_clip(sector: np.ndarray, texts=None, n_frames: int = 16, seed: int = 0):
    """Float clip (1, T, H, W) with speckle in ``sector``, text outside, a caliper inside."""
    frames = speckle_frames(sector, n_frames, seed)
    rows, columns = np.nonzero(sector)
    caliper_xy = (int(np.median(columns)), int(np.median(rows)))
    kwargs = {"texts": texts} if texts is not None else {}
    frames, text, caliper = burn_in_overlays(frames, sector, caliper_xy=caliper_xy, **kwargs)
    assert text.sum() > 30 and caliper.sum() > 5  # the overlays were drawn
    return torch.from_numpy(frames)[None], text, caliper


def is_one_convex_region(mask: np.ndarray) -> bool:
    count, _ = cv2.connectedComponents(mask.astype(np.uint8))
    hull = cv2.convexHull(cv2.findNonZero(mask.astype(np.uint8)))
    return count == 2 and mask.sum() >= 0.99 * cv2.contourArea(hull)


# --- synthetic fans ---------------------------------------------------------------------


@pytest.mark.parametrize("fan", [CURVILINEAR, PHASED], ids=["curvilinear", "phased"])
def test_temporal_mode_finds_the_fan_and_leaves_the_text_out(fan):
    sector = fan_mask(**fan)
    clip, text, caliper = synthetic_clip(sector)
    found = detect_sector(clip, mode="temporal")
    assert found.shape == sector.shape and found.dtype == bool
    assert iou(found, sector) > 0.95
    assert not (found & text).any()
    assert found[caliper].all()  # a static caliper inside the fan does not cut a hole
    assert is_one_convex_region(found)


@pytest.mark.parametrize("fan", [CURVILINEAR, PHASED], ids=["curvilinear", "phased"])
def test_intensity_mode_finds_the_fan_on_one_frame(fan):
    sector = fan_mask(**fan)
    clip, text, _ = synthetic_clip(sector)
    found = detect_sector(clip[:, :1], mode="intensity")
    assert iou(found, sector) > 0.9
    assert not (found & text).any()


def test_linear_probe_rectangle_is_found_in_both_modes():
    sector = linear_sector()
    clip, text, _ = synthetic_clip(sector, texts=LINEAR_TEXTS)
    temporal = detect_sector(clip, mode="temporal")
    intensity = detect_sector(clip[:, :1], mode="intensity")
    assert iou(temporal, sector) > 0.95
    assert iou(intensity, sector) > 0.9
    assert not (temporal & text).any() and not (intensity & text).any()


def test_auto_mode_uses_motion_when_there_is_some_and_intensity_otherwise():
    sector = fan_mask(**CURVILINEAR)
    clip, _, _ = synthetic_clip(sector)
    assert np.array_equal(detect_sector(clip), detect_sector(clip, mode="temporal"))
    frozen = clip[:, :1].repeat(1, 8, 1, 1)
    assert np.array_equal(detect_sector(frozen), detect_sector(frozen, mode="intensity"))
    with pytest.raises(ValueError, match="at least 2 frames"):
        detect_sector(clip[:, :1], mode="temporal")
    with pytest.raises(ValueError, match="mode"):
        detect_sector(clip, mode="hough")


def test_reader_frames_and_float_clips_give_the_same_mask():
    sector = fan_mask(**PHASED)
    clip, _, _ = synthetic_clip(sector, n_frames=8)
    quantised = torch.round(clip * 255) / 255
    rgb_frames = np.repeat(np.rint(clip[0].numpy() * 255).astype(np.uint8)[..., None], 3, axis=-1)  # (T, H, W, 3)
    expected = detect_sector(quantised)
    assert np.array_equal(detect_sector(rgb_frames), expected)
    assert np.array_equal(detect_sector(quantised.repeat(3, 1, 1, 1).numpy()), expected)


def test_region_bounds_restrict_the_search():
    # A larger moving region (a live trace panel) beside the fan wins without bounds.
    sector = fan_mask(96, 160, apex_yx=(2.0, 40.0), radii=(0.0, 90.0), half_angle_deg=25.0)
    panel = np.zeros_like(sector)
    panel[4:92, 84:158] = True
    frames = speckle_frames(sector | panel, n_frames=8)
    clip = torch.from_numpy(frames)[None]
    assert iou(detect_sector(clip), panel) > 0.9
    bounded = detect_sector(clip, region_bounds=(0, 0, 79, 95))
    assert iou(bounded, sector) > 0.95
    assert not bounded[:, 80:].any()
    # Several boxes: the largest is used.
    boxes = np.array([[84, 4, 157, 91], [0, 0, 79, 95], [0, 0, 5, 5]])
    assert np.array_equal(detect_sector(clip, region_bounds=boxes), bounded)


def test_a_blank_clip_hides_nothing():
    assert detect_sector(torch.zeros(1, 4, 32, 48)).all()


# --- probe geometry -------------------------------------------------------------------


@pytest.mark.parametrize("fan", [CURVILINEAR, PHASED], ids=["curvilinear", "phased"])
def test_apex_and_depth_range_of_a_fan(fan):
    geometry = depth_geometry(fan_mask(**fan))
    assert geometry.radial
    assert np.allclose(geometry.origin_yx, fan["apex_yx"], atol=1.5)
    assert np.allclose(geometry.depth_range, fan["radii"], atol=2.5)


def test_apex_of_a_fan_cut_by_the_image_edge():
    fan = {"apex_yx": (-10.0, 80.0), "radii": (20.0, 120.0), "half_angle_deg": 35.0}
    mask = fan_mask(**fan)
    assert mask[:, -1].any()  # the right side leaves the image
    geometry = depth_geometry(mask)
    assert geometry.radial
    assert np.allclose(geometry.origin_yx, fan["apex_yx"], atol=2.0)


def test_a_rectangle_gives_depth_by_row():
    geometry = depth_geometry(torch.from_numpy(linear_sector()).float()[None, None])
    assert not geometry.radial
    assert geometry.depth_range == (6.0, 121.0)


def test_depth_map_values():
    top = depth_map(5, 3)
    assert torch.allclose(top, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])[:, None].expand(5, 3))
    fan = DepthGeometry(radial=True, origin_yx=(-10.0, 64.0), depth_range=(20.0, 120.0))
    depth = depth_map(128, 128, fan)
    assert depth[10, 64] == pytest.approx(0.0)  # 20 px below the apex: the probe surface
    assert depth[60, 64] == pytest.approx(0.5)  # 70 px: half way
    assert depth[70, 64 + 60] == pytest.approx((np.hypot(80, 60) - 20) / 100, abs=1e-6)
    assert depth.min() >= 0 and depth.max() <= 1


# --- real DICOM files from pydicom-data ----------------------------------------------


def dicom_frames(name: str, step: int = 1, limit: int | None = None) -> tuple[np.ndarray, pydicom.Dataset]:
    """uint8 frames (T, H, W, C) of a pydicom test file, decoded by pydicom itself."""
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is missing from pydicom-data"
    header = pydicom.dcmread(path, stop_before_pixels=True)
    n_frames = int(header.get("NumberOfFrames", 1))
    indices = list(range(0, n_frames, step))[:limit]
    if header.PhotometricInterpretation == "PALETTE COLOR":
        dataset = pydicom.dcmread(path)
        rgb = apply_color_lut(dataset.pixel_array, dataset)
        frames = (rgb >> 8).astype(np.uint8) if rgb.dtype == np.uint16 else rgb
        frames = frames.reshape(-1, *frames.shape[-3:])[indices]
    else:
        frames = np.stack([pixel_array(path, index=i) for i in indices])
        if frames.ndim == 3:
            frames = frames[..., None]
    return frames, header


def first_region(header: pydicom.Dataset) -> tuple[int, int, int, int]:
    region = header.SequenceOfUltrasoundRegions[0]
    return (
        int(region.RegionLocationMinX0),
        int(region.RegionLocationMinY0),
        int(region.RegionLocationMaxX1),
        int(region.RegionLocationMaxY1),
    )


def fraction_inside(mask: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    return float(mask[y0 : y1 + 1, x0 : x1 + 1].sum() / mask.sum())


def assert_text_outside(mask: np.ndarray, frame: np.ndarray, boxes: dict[str, tuple[int, int, int, int]]) -> None:
    """Each (x0, y0, x1, y1) box holds burned-in text (bright pixels) and none of the mask."""
    brightest = frame.max(axis=-1)
    for label, (x0, y0, x1, y1) in boxes.items():
        assert (brightest[y0:y1, x0:x1] > 90).sum() >= 20, f"no text found in the {label} box"
        assert not mask[y0:y1, x0:x1].any(), f"the sector mask covers the {label} text"


# Burned-in text of the 480x640 echo cine (found by looking at its frames).
ECHO_TEXT = {
    "top-left labels": (0, 0, 80, 60),
    "right column": (585, 25, 640, 200),
    "frame number": (568, 392, 600, 416),
    "bottom toolbar": (80, 455, 565, 480),
}


@pytest.fixture(scope="module")
def echo_cine():
    return dicom_frames("color3d_jpeg_baseline.dcm", step=4)  # 30 of 120 frames


def test_real_echo_cine_temporal(echo_cine):
    frames, header = echo_cine
    assert frames.shape == (30, 480, 640, 3)
    mask = detect_sector(frames)  # auto: the speckle moves
    assert np.array_equal(mask, detect_sector(frames, mode="temporal"))
    assert is_one_convex_region(mask)
    assert 0.25 < mask.mean() < 0.5
    assert_text_outside(mask, frames[0], ECHO_TEXT)
    assert fraction_inside(mask, first_region(header)) > 0.99
    # The middle of the heart is inside.
    assert mask[200:260, 300:380].all()


def test_real_echo_frame_intensity(echo_cine):
    frames, header = echo_cine
    mask = detect_sector(frames[:1])  # auto: a single frame
    assert is_one_convex_region(mask)
    assert 0.2 < mask.mean() < 0.5
    assert_text_outside(mask, frames[0], ECHO_TEXT)
    assert fraction_inside(mask, first_region(header)) > 0.99
    temporal = detect_sector(frames, mode="temporal")
    assert (mask & temporal).sum() > 0.95 * mask.sum()


def test_real_philips_obstetric_palette_frame():
    frames, header = dicom_frames("OBXXXX1A.dcm")
    assert frames.shape == (1, 600, 800, 3)
    mask = detect_sector(frames)
    assert is_one_convex_region(mask)
    assert 0.3 < mask.mean() < 0.55
    assert_text_outside(
        mask,
        frames[0],
        {"top banner": (0, 0, 800, 58), "left labels": (0, 64, 110, 260), "probe legend": (130, 470, 200, 525)},
    )
    box = first_region(header)
    assert fraction_inside(mask, box) > 0.99
    assert mask[90:140, 420:500].all()  # the bright near field under the probe
    bounded = detect_sector(frames, region_bounds=box)
    x0, y0, x1, y1 = box
    assert not bounded[:y0].any() and not bounded[:, :x0].any() and not bounded[y1 + 1 :].any()
    assert iou(bounded, mask) > 0.98


def test_real_adult_echo_frame_with_calipers_and_ecg():
    frames, header = dicom_frames("JPGLosslessP14SV1_1s_1f_8b.dcm")
    assert frames.shape == (1, 768, 1024, 1)
    mask = detect_sector(frames)
    assert is_one_convex_region(mask)
    assert 0.2 < mask.mean() < 0.45
    assert_text_outside(
        mask,
        np.repeat(frames[0], 3, axis=-1),
        {
            "top-left labels": (0, 15, 340, 120),
            "left column": (0, 135, 80, 240),
            "top-right labels": (820, 20, 990, 50),
            "grey bar": (960, 120, 990, 330),
            "ecg trace": (60, 690, 380, 750),
            "heart rate": (925, 728, 995, 750),
        },
    )
    assert fraction_inside(mask, first_region(header)) > 0.99


def test_region_dictionaries_from_the_dicom_header_are_understood():
    _, header = dicom_frames("OBXXXX1A.dcm")
    regions = [
        {keyword: region.get(keyword) for keyword in (
            "RegionSpatialFormat", "RegionLocationMinX0", "RegionLocationMinY0",
            "RegionLocationMaxX1", "RegionLocationMaxY1")}
        for region in header.SequenceOfUltrasoundRegions
    ]
    assert [r["RegionSpatialFormat"] for r in regions] == [1, 4]  # a 2D image and a spectral strip
    clip = torch.rand(1, 1, 600, 800)
    from_dicts = detect_sector(clip, region_bounds=regions[::-1])  # the 2D region wins, wherever it is
    assert np.array_equal(from_dicts, detect_sector(clip, region_bounds=first_region(header)))
    assert np.array_equal(detect_sector(clip, region_bounds=[]), detect_sector(clip))


def test_sector_frames_spread_over_the_whole_loop():
    assert spread_frame_indices(64, 4).tolist() == [0, 21, 42, 63]
    assert spread_frame_indices(5, 16).tolist() == [0, 1, 2, 3, 4]
    assert spread_frame_indices(1, 16).tolist() == [0]
    with pytest.raises(ValueError, match="must be >= 1"):
        spread_frame_indices(0, 4)
