"""Sector masking, speckle and depth attenuation transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.media import burn_in_overlays, fan_mask, speckle_frames
from ultrassl.transforms.sector import depth_map, detect_sector
from ultrassl.transforms.ultrasound import (
    MaskOutsideSector,
    RandDepthAttenuation,
    RandDepthAttenuationd,
    RandSpeckle,
    RandSpeckled,
    SectorMask,
    SectorMaskd,
    mask_outside,
)

FAN = {"apex_yx": (-10.0, 64.0), "radii": (20.0, 120.0), "half_angle_deg": 30.0}


@pytest.fixture(scope="module")
def fan_clip():
    """An RGB clip (3, 12, 128, 128) with speckle in a fan, burned-in text outside it."""
    sector = fan_mask(**FAN)
    frames, text, _ = burn_in_overlays(speckle_frames(sector, n_frames=12), sector)
    clip = torch.from_numpy(frames)[None].repeat(3, 1, 1, 1)
    return clip, sector, text


# --- sector masking -------------------------------------------------------------------


def test_sector_mask_and_masking_remove_every_text_pixel(fan_clip):
    clip, sector, text = fan_clip
    mask = SectorMask()(clip)
    assert mask.shape == (1, 1, 128, 128) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert np.array_equal(mask[0, 0].numpy().astype(bool), detect_sector(clip))
    assert (clip[:, :, torch.from_numpy(text)] == 1).all()  # the text is there before
    masked = MaskOutsideSector()(clip)
    assert (masked[:, :, torch.from_numpy(text)] == 0).all()
    inside = mask[0, 0].bool()
    assert torch.equal(masked[..., inside], clip[..., inside])


def test_mask_outside_fills_with_the_given_value_and_checks_sizes(fan_clip):
    clip, sector, _ = fan_clip
    mask = torch.from_numpy(sector)
    filled = MaskOutsideSector(fill_value=0.5)(clip, mask=mask)
    assert (filled[..., ~mask] == 0.5).all()
    assert torch.equal(filled[..., mask], clip[..., mask])
    # A (1, T, H, W) mask masks frame by frame.
    per_frame = torch.zeros(1, clip.shape[1], 128, 128)
    per_frame[:, 0] = 1
    out = mask_outside(clip, per_frame)
    assert torch.equal(out[:, 0], clip[:, 0]) and (out[:, 1:] == 0).all()
    with pytest.raises(ValueError, match="differs"):
        mask_outside(clip, torch.ones(64, 64))


def test_sector_maskd_stores_the_mask_and_leaves_the_input_alone(fan_clip):
    clip, sector, text = fan_clip
    sample = {"clip": clip, "region": (0, 0, 127, 127)}
    out = SectorMaskd(keys="clip", region_key="region")(sample)
    assert set(sample) == {"clip", "region"} and sample["clip"] is clip  # input untouched
    mask = out["sector_mask"]
    assert mask.shape == (1, 1, 128, 128) and mask.dtype == torch.float32
    assert (out["clip"][:, :, torch.from_numpy(text)] == 0).all()
    assert mask[0, 0, torch.from_numpy(sector)].mean() > 0.99

    # apply=False only adds the mask; a mask already in the sample is used as is.
    only_mask = SectorMaskd(apply=False)({"clip": clip})
    assert only_mask["clip"] is clip and torch.equal(only_mask["sector_mask"], mask)
    given = torch.zeros(1, 1, 128, 128)
    given[..., :64] = 1
    reused = SectorMaskd()({"clip": clip, "sector_mask": given})
    assert (reused["clip"][..., 64:] == 0).all() and torch.equal(reused["clip"][..., :64], clip[..., :64])


def test_sector_maskd_uses_region_bounds_from_the_sample(fan_clip):
    clip, _, _ = fan_clip
    out = SectorMaskd(region_key="region")({"clip": clip, "region": np.array([0, 0, 63, 127])})
    assert out["sector_mask"][..., 64:].sum() == 0
    assert out["sector_mask"][..., :64].sum() > 1000
    with pytest.raises(ValueError, match="mask_key"):
        SectorMaskd(keys=["clip", "sector_mask"])


# --- speckle ----------------------------------------------------------------------------


def flat_clip(value: float = 0.4, n_frames: int = 8, size: int = 64) -> torch.Tensor:
    return torch.full((1, n_frames, size, size), value)


def test_speckle_strength_is_the_same_on_every_frame():
    clip = flat_clip()
    speckle = RandSpeckle(sigma_range=(0.1, 0.3)).set_random_state(0)
    out = speckle(clip)
    sigma = speckle.params["sigma"]
    ratio = out / clip  # the multiplicative field itself (no clipping at this level)
    per_frame_std = ratio.std(dim=(0, 2, 3))
    per_frame_mean = ratio.mean(dim=(0, 2, 3))
    # 4096 samples per frame: the std estimate is good to about 2%.
    assert torch.allclose(per_frame_std, torch.full_like(per_frame_std, sigma), rtol=0.06)
    assert torch.allclose(per_frame_mean, torch.ones_like(per_frame_mean), atol=0.02)
    # Fresh noise on every frame...
    assert not torch.equal(ratio[:, 0], ratio[:, 1])


def test_frozen_speckle_is_one_field_for_the_clip():
    clip = flat_clip()
    out = RandSpeckle(per_frame_noise=False).set_random_state(1)(clip)
    assert all(torch.equal(out[:, 0], out[:, t]) for t in range(1, clip.shape[1]))
    assert out.std() > 0.01


def test_speckle_replays_from_its_recorded_parameters_and_seed(fan_clip):
    clip, _, _ = fan_clip
    speckle = RandSpeckle().set_random_state(3)
    out = speckle(clip)
    params = dict(speckle.params)
    assert set(params) == {"applied", "sigma", "noise_seed", "per_frame_noise"}
    assert torch.equal(RandSpeckle().apply(clip, params), out)
    again = RandSpeckle().set_random_state(3)(clip)
    assert torch.equal(again, out)
    other = RandSpeckle().set_random_state(4)(clip)
    assert not torch.equal(other, out)
    # Every channel gets the same field.
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_speckle_stays_in_range_and_keeps_the_masked_background_black(fan_clip):
    clip, sector, _ = fan_clip
    masked = mask_outside(clip, torch.from_numpy(sector))
    out = RandSpeckle(sigma_range=(0.3, 0.3)).set_random_state(5)(masked)
    assert out.min() >= 0 and out.max() <= 1
    assert (out[..., ~torch.from_numpy(sector)] == 0).all()
    assert not torch.equal(out, masked)


def test_speckled_skips_masks_and_records_the_same_fields_fired_or_not(fan_clip):
    clip, sector, _ = fan_clip
    mask = torch.from_numpy(sector).float()[None, None]
    fired = RandSpeckled(keys="clip", prob=1.0).set_random_state(0)({"clip": clip, "sector_mask": mask})
    skipped = RandSpeckled(keys="clip", prob=0.0).set_random_state(0)({"clip": clip, "sector_mask": mask})
    assert fired["sector_mask"] is mask
    assert not torch.equal(fired["clip"], clip) and skipped["clip"] is clip
    fired_params = fired["clip_params"]["speckle"]
    assert set(fired_params) == set(skipped["clip_params"]["speckle"])
    assert torch.equal(RandSpeckle().apply(clip, fired_params), fired["clip"])
    assert "sector_mask_params" not in fired


def test_speckle_rejects_bad_ranges():
    with pytest.raises(ValueError, match="sigma_range"):
        RandSpeckle(sigma_range=(0.0, 0.3))
    with pytest.raises(ValueError, match="prob"):
        RandSpeckle(prob=1.5)


# --- depth attenuation ----------------------------------------------------------------


def test_attenuation_is_exp_minus_alpha_depth_on_every_frame():
    clip = torch.rand(2, 6, 40, 30) * 0.9 + 0.1
    attenuation = RandDepthAttenuation(alpha_range=(0.5, 1.5)).set_random_state(0)
    out = attenuation(clip)
    alpha = attenuation.params["alpha"]
    assert 0.5 <= alpha <= 1.5
    depth = torch.arange(40, dtype=torch.float32) / 39  # the probe along the top row
    expected = torch.exp(-alpha * depth)[:, None].expand(40, 30)
    ratio = out / clip
    for c in range(2):
        for t in range(6):
            assert torch.allclose(ratio[c, t], expected, rtol=1e-5)
    assert torch.equal(attenuation.apply(clip, dict(attenuation.params)), out)
    assert torch.equal(RandDepthAttenuation(alpha_range=(0.5, 1.5)).set_random_state(0)(clip), out)
    assert not torch.equal(RandDepthAttenuation(alpha_range=(0.5, 1.5)).set_random_state(1)(clip), out)


def test_attenuation_from_the_sector_apex(fan_clip):
    clip, sector, _ = fan_clip
    sample = SectorMaskd()({"clip": clip})
    out = RandDepthAttenuationd(keys="clip", mask_key="sector_mask", alpha_range=(1.0, 2.0)).set_random_state(2)(sample)
    params = out["clip_params"]["depth_attenuation"]
    assert params["radial"] and 1.0 <= params["alpha"] <= 2.0
    assert out["sector_mask"] is sample["sector_mask"]  # masks are not attenuated
    inside = torch.from_numpy(sector) & (sample["clip"][0, 0] > 0)
    ratio = out["clip"][..., inside] / sample["clip"][..., inside]
    # Analytically: depth from the true apex, 0 at the probe's arc, 1 at the deepest arc.
    rows, columns = np.nonzero(inside.numpy())
    radius = np.hypot(rows - FAN["apex_yx"][0], columns - FAN["apex_yx"][1])
    true_depth = np.clip((radius - 20.0) / 100.0, 0, 1)
    expected = torch.from_numpy(np.exp(-params["alpha"] * true_depth)).float()
    assert torch.allclose(ratio, expected.expand_as(ratio), atol=0.03)
    # The same on every frame, and replayable from the record.
    assert torch.allclose(ratio[:, 0], ratio[:, -1], rtol=1e-5)
    assert torch.equal(RandDepthAttenuation().apply(sample["clip"], params), out["clip"])
    # Outside the sector the clip stays black.
    assert (out["clip"][..., ~torch.from_numpy(sector)] == 0).all()


def test_array_attenuation_accepts_a_sector_mask(fan_clip):
    clip, sector, _ = fan_clip
    attenuation = RandDepthAttenuation().set_random_state(0)
    radial = attenuation(clip, sector_mask=sector)
    assert attenuation.params["radial"] and attenuation.geometry is None
    top = RandDepthAttenuation().set_random_state(0)(clip)
    assert not torch.equal(radial, top)


def test_inverse_attenuation_brightens_with_depth_and_stays_in_range():
    clip = torch.full((1, 3, 50, 20), 0.6)
    attenuation = RandDepthAttenuation(alpha_range=(1.0, 1.0), inverse_prob=1.0).set_random_state(0)
    out = attenuation(clip)
    assert attenuation.params["alpha"] == -1.0
    assert out.max() == 1.0 and out.min() >= 0.6
    column = out[0, 0, :, 0]
    assert (column[1:] >= column[:-1]).all()
    expected = (0.6 * torch.exp(torch.arange(50) / 49.0)).clamp(max=1.0)
    assert torch.allclose(column, expected, rtol=1e-5)


def test_attenuation_records_the_same_fields_fired_or_not():
    clip = torch.rand(1, 2, 16, 16)
    fired = RandDepthAttenuationd(prob=1.0).set_random_state(0)({"clip": clip})
    skipped = RandDepthAttenuationd(prob=0.0).set_random_state(0)({"clip": clip})
    assert skipped["clip"] is clip
    assert set(fired["clip_params"]["depth_attenuation"]) == set(skipped["clip_params"]["depth_attenuation"])
    assert skipped["clip_params"]["depth_attenuation"]["alpha"] == 0.0
    with pytest.raises(ValueError, match="mask_key"):
        RandDepthAttenuationd(keys=["clip", "sector_mask"], mask_key="sector_mask")
    with pytest.raises(ValueError, match="alpha_range"):
        RandDepthAttenuation(alpha_range=(-1.0, 1.0))


def test_depth_map_is_what_attenuation_uses():
    clip = torch.ones(1, 1, 9, 5) * 0.5
    attenuation = RandDepthAttenuation(alpha_range=(2.0, 2.0)).set_random_state(0)
    out = attenuation(clip)
    assert torch.allclose(out[0, 0], 0.5 * torch.exp(-2.0 * depth_map(9, 5)))
