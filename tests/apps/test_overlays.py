"""Pixel-level checks of the viewer's drawing functions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from apps import overlays
from apps.overlays import ViewOptions
from tests.media import burn_in_overlays, fan_mask, speckle_frames


@pytest.fixture
def fan_frame() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A uint8 (H, W, 1) frame with speckle inside a fan and white text outside it; the fan; the text."""
    sector = fan_mask(64, 80, apex_yx=(-8.0, 40.0), radii=(12.0, 68.0), half_angle_deg=32.0)
    frames, text, _ = burn_in_overlays(
        speckle_frames(sector, n_frames=1), sector, texts=(("ID 42", (1, 8)), ("HOSP", (52, 62))), caliper_xy=None
    )
    frame = np.rint(frames[0] * 255).astype(np.uint8)[..., None]
    return frame, sector, text


def _randomise_outside(frame: np.ndarray, sector: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 256, frame.shape, dtype=np.uint8)
    return np.where(sector[..., None], frame, noise).astype(np.uint8)


def test_default_view_hides_everything_outside_the_sector(fan_frame):
    frame, sector, text = fan_frame
    assert text.sum() > 20 and (frame[text] == 255).all()
    fixations = np.array([[40.0, 30.0], [20.0, 50.0]])
    scale = 8
    shown = overlays.render_view(frame, ViewOptions(), sector, fixations, fixations, scale)
    assert shown.shape == (64 * scale, 80 * scale, 3) and shown.dtype == np.uint8
    # the image does not depend on any pixel outside the sector, whatever it holds
    for seed in (0, 1):
        other = overlays.render_view(_randomise_outside(frame, sector, seed), ViewOptions(), sector, fixations,
                                     fixations, scale)
        np.testing.assert_array_equal(shown, other)
    # the burned-in text is black on screen (the outline passes nowhere near it)
    rows, columns = np.nonzero(text)
    assert (shown[rows * scale + scale // 2, columns * scale + scale // 2] == 0).all()


def test_masked_view_without_drawings_is_zero_outside_and_the_frame_inside(fan_frame):
    frame, sector, _ = fan_frame
    options = ViewOptions(sector_outline=False, fixations=False)
    scale = 4
    shown = overlays.render_view(frame, options, sector, scale=scale)
    big_sector = overlays.enlarge_mask(sector, scale)
    assert (shown[~big_sector] == 0).all()
    # inside, away from the border, the enlarged frame itself (grey in all three channels)
    inner = cv2.erode(sector.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    reference = overlays.enlarge(np.repeat(frame, 3, axis=-1), scale)
    big_inner = overlays.enlarge_mask(inner, scale)
    np.testing.assert_array_equal(shown[big_inner], reference[big_inner])


def test_unmasked_view_shows_the_text(fan_frame):
    frame, sector, text = fan_frame
    shown = overlays.render_view(frame, ViewOptions(hide_outside_sector=False, sector_outline=False), None,
                                 scale=1)
    np.testing.assert_array_equal(shown, np.repeat(frame, 3, axis=-1))
    assert (shown[text] == 255).all()


def test_masking_needs_a_sector(fan_frame):
    frame, _, _ = fan_frame
    with pytest.raises(ValueError, match="sector mask is needed"):
        overlays.render_view(frame, ViewOptions(), None)


def test_to_rgb_and_display_scale():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = overlays.to_rgb(grey[..., None])
    assert rgb.shape == (3, 4, 3) and (rgb == grey[..., None]).all()
    colour = np.zeros((3, 4, 3), np.uint8)
    colour[..., 2] = 7
    np.testing.assert_array_equal(overlays.to_rgb(colour), colour)
    with pytest.raises(ValueError, match="uint8"):
        overlays.to_rgb(grey.astype(np.float32))
    assert [overlays.display_scale(w) for w in (80, 160, 640, 2000)] == [8, 4, 1, 1]


def test_enlarged_mask_keeps_straight_edges_and_smooths_diagonals():
    box = np.zeros((10, 12), bool)
    box[2:6, 3:8] = True
    blocks = np.repeat(np.repeat(box, 4, axis=0), 4, axis=1)
    big = overlays.enlarge_mask(box, 4)
    # the edges stay where the blocks end; only the outermost pixel of each corner is rounded off
    assert sorted(zip(*np.nonzero(big != blocks))) == [(8, 12), (8, 31), (23, 12), (23, 31)]
    np.testing.assert_array_equal(overlays.enlarge_mask(box, 1), box)
    # a staircase becomes a straighter line: fewer changes of direction along its edge
    stairs = np.tri(12, 12, dtype=bool)
    smooth = overlays.enlarge_mask(stairs, 6)
    step = np.repeat(np.repeat(stairs, 6, axis=0), 6, axis=1)
    first_true = lambda m: np.argmax(m[:, ::-1], axis=1)  # noqa: E731
    assert np.abs(np.diff(first_true(smooth))).max() < np.abs(np.diff(first_true(step))).max()


def test_display_coordinates_match_enlarged_pixels():
    image = np.zeros((6, 9), np.uint8)
    image[4, 7] = 255
    big = overlays.enlarge(image, 5, smooth=False)
    rows, columns = np.nonzero(big)
    x, y = overlays.to_display_xy(np.array([[7, 4]]), 5)[0]
    assert (x, y) == (columns.mean(), rows.mean())


def test_fixation_circles_are_drawn_around_each_point():
    image = np.zeros((60, 80, 3), np.uint8)
    drawn = overlays.draw_fixations(image, np.array([[20.0, 30.0], [60.0, 15.0]]), radius=8, thickness=1)
    colour = np.array(overlays.FIXATION_COLOUR, dtype=np.float64)

    def strength(pixel: np.ndarray) -> float:
        """How much of the fixation colour a pixel holds (anti-aliased edges blend it with black)."""
        share = pixel / colour[colour > 0].max()
        np.testing.assert_allclose(pixel, share.max() * colour, atol=2)  # the same hue, darker or not
        return float(share.max())

    for x, y in ((20, 30), (60, 15)):
        assert strength(drawn[y, x]) == 1.0  # centre dot
        for dx, dy in ((8, 0), (-8, 0), (0, 8), (0, -8)):  # on the circle
            assert strength(drawn[y + dy, x + dx]) > 0.7
        assert (drawn[y, x + 4] == 0).all()  # between dot and circle
    assert (drawn[50:, :10] == 0).all()
    assert (image == 0).all()  # input untouched


def test_fixation_density_is_a_normalised_gaussian():
    sigma = 2.5
    density = overlays.fixation_density(np.array([[30.2, 20.4]]), (48, 64), sigma)
    assert density.dtype == np.float32 and density.shape == (48, 64)
    assert density.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(np.argmax(density), density.shape) == (20, 30)  # nearest pixel
    for d in (1, 2, 4):
        expected = np.exp(-(d**2) / (2 * sigma**2))
        assert density[20, 30 + d] / density[20, 30] == pytest.approx(expected, rel=1e-4)
        assert density[20 - d, 30] / density[20, 30] == pytest.approx(expected, rel=1e-4)


def test_fixation_density_adds_points_and_drops_those_outside():
    two = overlays.fixation_density(np.array([[10.0, 10.0], [10.0, 10.0], [40.0, 30.0]]), (48, 64), 2.0)
    assert two[10, 10] / two[30, 40] == pytest.approx(2.0, rel=1e-4)  # the repeated point weighs twice
    outside = overlays.fixation_density(np.array([[-5.0, 3.0], [64.0, 3.0], [3.0, 48.0]]), (48, 64), 2.0)
    assert (outside == 0).all()
    assert (overlays.fixation_density(np.zeros((0, 2)), (8, 8), 1.0) == 0).all()
    with pytest.raises(ValueError, match="sigma"):
        overlays.fixation_density(np.array([[1.0, 1.0]]), (8, 8), 0.0)


@pytest.mark.parametrize("sigma", [1.0, 2.5, 7.3])
def test_fixation_density_is_the_saliency_ground_truth(sigma):
    from ultrassl.metrics.saliency import fixation_density_map

    points = np.array([[3.2, 4.7], [30.0, 20.0], [30.4, 19.6], [79.0, 63.0], [-3.0, 5.0]])
    reference = fixation_density_map(points, (64, 80), sigma)[0].numpy()
    np.testing.assert_allclose(overlays.fixation_density(points, (64, 80), sigma), reference, atol=1e-7)


def test_density_sigma_scales_with_the_frame():
    assert overlays.density_sigma_px(128, 160) == pytest.approx(4.0)
    assert overlays.density_sigma_px(480, 640, 0.05) == pytest.approx(32.0)
    assert overlays.density_sigma_px(20, 24) == 1.0  # at least one pixel


def test_blended_density_leaves_pixels_without_density_unchanged():
    image = np.full((40, 50, 3), 90, np.uint8)
    density = overlays.fixation_density(np.array([[25.0, 20.0]]), (40, 50), 2.0)
    blended = overlays.blend_density(image, density, alpha=1.0)
    untouched = density == 0
    assert untouched.any()
    np.testing.assert_array_equal(blended[untouched], image[untouched])
    # at the peak the heat map's top colour replaces the image entirely (alpha 1)
    top = cv2.cvtColor(cv2.applyColorMap(np.full((1, 1), 255, np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(blended[20, 25], top[0, 0])
    np.testing.assert_array_equal(overlays.blend_density(image, np.zeros((40, 50)), 1.0), image)


def test_class_colours_are_distinct_and_background_is_grey():
    names = ["Background"] + [f"plane {i}" for i in range(30)]
    colours = overlays.class_colours(names)
    assert colours[0] == overlays.BACKGROUND_COLOUR
    assert len(set(colours[1:])) == 30 and overlays.BACKGROUND_COLOUR not in colours[1:]


def test_timeline_colours_every_frame_and_marks_the_current_one():
    labels = np.array([0, 0, 1, 2, 2, 2, 1, -1, 0, 3])
    colours = [(10, 10, 10), (200, 0, 0), (0, 200, 0), (0, 0, 200)]
    strip = overlays.plane_timeline(labels, colours, current=4, width=100, bar_height=20, marker_height=10)
    assert strip.shape == (30, 100, 3)
    for t, label in enumerate(labels):
        expected = (0, 0, 0) if label < 0 else colours[label]
        middle = t * 10 + 5  # 10 columns per frame
        np.testing.assert_array_equal(strip[10, middle], expected)
    # the marker lies under frame 4 (columns 40..49) and nowhere else
    marker = (strip[20:] == 255).all(axis=-1)
    columns = np.flatnonzero(marker.any(axis=0))
    assert columns.min() >= 36 and columns.max() <= 53 and marker[:, 44:46].any()
    # the current frame is framed in white on the bar
    assert (strip[0, 40:50] == 255).all() and (strip[0, 30:39] != 255).any()
    plain = overlays.plane_timeline(labels, colours, current=None, width=100, bar_height=20, marker_height=10)
    assert (plain[20:] == 0).all()


def test_frame_columns_cover_every_frame_in_order():
    columns = overlays.frame_columns(12, 640)
    assert columns[0] == 0 and columns[-1] == 11 and (np.diff(columns) >= 0).all()
    counts = np.bincount(columns)
    assert counts.min() >= 53 and counts.max() <= 54
    many = overlays.frame_columns(1000, 100)
    assert many[-1] <= 999 and len(np.unique(many)) == 100
    strip = overlays.plane_timeline(np.zeros(1000, int), [(1, 2, 3)], current=999, width=100)
    assert (strip[-3:] == 255).any()


def test_model_map_heat_puts_the_map_back_on_the_frame():
    image = np.zeros((40, 60, 3), dtype=np.uint8)  # a 20 x 30 frame shown at scale 2
    model_map = np.zeros((10, 15), dtype=np.float32)  # the model's input: half the frame size
    model_map[2:4, 10:12] = 1.0  # a hot spot at frame rows 4-7, columns 20-23
    out = overlays.model_map_heat(image, model_map, scale=2, alpha=1.0)
    hot = np.unravel_index(np.argmax(out.astype(int).sum(axis=2)), out.shape[:2])
    assert 8 <= hot[0] < 16 and 40 <= hot[1] < 48
    # signed maps (class activation) are shifted so that their minimum shows nothing
    signed = model_map - 5.0
    np.testing.assert_array_equal(overlays.model_map_heat(image, signed, scale=2, alpha=1.0, shift_to_zero=True), out)
    np.testing.assert_array_equal(overlays.model_map_heat(image, signed, scale=2, alpha=1.0), image)
    # nothing is drawn outside the sector
    sector = np.zeros((20, 30), dtype=bool)
    sector[:, :15] = True
    masked = overlays.model_map_heat(image, model_map, sector, scale=2, alpha=1.0)
    np.testing.assert_array_equal(masked, image)  # the hot spot lies outside


def test_the_colour_bar_runs_from_the_colour_of_zero_to_that_of_the_peak():
    bar = overlays.colour_bar(100, 10)
    assert bar.shape == (10, 100, 3) and bar.dtype == np.uint8
    zero = overlays.blend_density(np.zeros((1, 2, 3), np.uint8), np.array([[0.0, 1.0]], np.float32), alpha=1.0)
    np.testing.assert_array_equal(bar[0, -1], zero[0, 1])  # the peak's colour at full opacity
    assert bar[0, 0, 2] > bar[0, 0, 0]  # blue at zero
