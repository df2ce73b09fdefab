"""CATE's encodings come from the recorded draws and change with them; the transformer head reads them."""

from __future__ import annotations

import math

import pytest
import torch
from monai.transforms import Compose
from torch.utils.data import default_collate

from ultrassl.models.cate_head import AugmentationAwareHead
from ultrassl.models.cate_tokens import TOKEN_DIMS, augmentation_tokens, identity_tokens
from ultrassl.transforms.spatial import RandFlipClipd, RandResizedCropClipd
from ultrassl.transforms.temporal import PairSampler, SampleFramesd

KINDS = ["time", "crop", "flip", "speed"]
VIEWS = ("view1", "view2")


def _chain(shared_crop: bool = False) -> Compose:
    """Pair sampling, then a crop and a flip per view (or one crop for both views)."""
    crops = ([RandResizedCropClipd(VIEWS, 16)] if shared_crop
             else [RandResizedCropClipd(view, 16) for view in VIEWS])
    return Compose([SampleFramesd(PairSampler(4, 2), VIEWS), *crops, *[RandFlipClipd(view) for view in VIEWS]])


def _batch(seed: int, n: int = 6, fps: float = 25.0, shared_crop: bool = False) -> dict:
    chain = _chain(shared_crop)
    chain.set_random_state(seed)
    samples = []
    for i in range(n):
        clip = torch.rand(1, 4, 40, 48, generator=torch.Generator().manual_seed(i))
        samples.append(chain({"n_frames": 90, "fps": fps, "view1": clip, "view2": clip}))
    return default_collate(samples)


def test_encodings_are_the_recorded_draws():
    batch = _batch(seed=0)
    tokens = augmentation_tokens(batch, "view1", "view2", KINDS, time_scale_s=2.0)
    assert {kind: tuple(v.shape) for kind, v in tokens.items()} == {k: (6, TOKEN_DIMS[k]) for k in KINDS}
    first, second = batch["view1_params"], batch["view2_params"]
    shift_s = (first["temporal"]["start_frame"] - second["temporal"]["start_frame"]) / 25.0
    torch.testing.assert_close(tokens["time"][:, 0], (shift_s / 2.0).float())
    flipped = first["flip"]["flipped"] ^ second["flip"]["flipped"]
    torch.testing.assert_close(tokens["flip"][:, 0], flipped.float())
    box1 = torch.stack(first["resized_crop"]["box_relative"], 1)
    box2 = torch.stack(second["resized_crop"]["box_relative"], 1)
    expected_crop = torch.stack([
        (box1[:, 0] - box2[:, 0]) / box2[:, 2], (box1[:, 1] - box2[:, 1]) / box2[:, 3],
        torch.log(box1[:, 2] / box2[:, 2]), torch.log(box1[:, 3] / box2[:, 3]),
    ], 1)
    torch.testing.assert_close(tokens["crop"], expected_crop.float())
    torch.testing.assert_close(tokens["speed"], torch.zeros(6, 1))  # one stride for both views
    # the reverse direction is the negated time shift
    reverse = augmentation_tokens(batch, "view2", "view1", ["time"], time_scale_s=2.0)
    torch.testing.assert_close(reverse["time"], -tokens["time"])


def test_encodings_change_when_the_drawn_augmentation_changes():
    first = augmentation_tokens(_batch(0), "view1", "view2", KINDS)
    again = augmentation_tokens(_batch(0), "view1", "view2", KINDS)
    other = augmentation_tokens(_batch(1), "view1", "view2", KINDS)
    for kind in ("time", "crop", "flip"):
        torch.testing.assert_close(again[kind], first[kind])  # same draws, same encodings
        assert not torch.equal(other[kind], first[kind]), kind  # new draws, new encodings
    # one crop for both views: the crop encoding is the identity
    shared = augmentation_tokens(_batch(0, shared_crop=True), "view1", "view2", ["crop"])
    torch.testing.assert_close(shared["crop"], torch.zeros(6, 4))


@pytest.mark.parametrize("fps", [25.0, math.nan])
def test_speed_encoding_is_log2_of_the_stride_ratio_when_views_draw_their_strides(fps):
    chain = Compose([SampleFramesd(PairSampler(4, strides=(1, 2, 4)), VIEWS)])
    chain.set_random_state(0)
    batch = default_collate([chain({"n_frames": 90, "fps": fps}) for _ in range(32)])
    speed = augmentation_tokens(batch, "view1", "view2", ["speed"], default_fps=10.0)["speed"][:, 0]
    stride1, stride2 = (batch[f"{view}_params"]["temporal"]["stride"] for view in VIEWS)
    torch.testing.assert_close(speed, torch.log2(stride1 / stride2).float())
    assert set(speed.tolist()) == {-2.0, -1.0, 0.0, 1.0, 2.0}  # every ratio of {1, 2, 4}
    reverse = augmentation_tokens(batch, "view2", "view1", ["speed"])["speed"][:, 0]
    torch.testing.assert_close(reverse, -speed)


def test_speed_encoding_compares_seconds_per_step_across_frame_rates():
    # a view at stride 2 of 50 fps plays at the speed of stride 1 at 25 fps
    temporal = lambda stride, fps: {"temporal": {"stride": torch.tensor([stride]), "fps": torch.tensor([fps])}}  # noqa: E731
    batch = {"view1_params": temporal(2, 50.0), "view2_params": temporal(1, 25.0)}
    assert augmentation_tokens(batch, "view1", "view2", ["speed"])["speed"].item() == 0.0
    batch["view1_params"] = temporal(4, 25.0)
    assert augmentation_tokens(batch, "view1", "view2", ["speed"])["speed"].item() == 2.0


def test_unknown_frame_rate_falls_back_to_the_default_fps():
    batch = _batch(seed=0, fps=math.nan)
    tokens = augmentation_tokens(batch, "view1", "view2", ["time"], default_fps=10.0)
    frames = batch["view1_params"]["temporal"]["start_frame"] - batch["view2_params"]["temporal"]["start_frame"]
    torch.testing.assert_close(tokens["time"][:, 0], (frames / 10.0).float())


def test_bad_requests_are_named():
    batch = _batch(seed=0)
    with pytest.raises(ValueError, match="unknown augmentation encodings"):
        augmentation_tokens(batch, "view1", "view2", ["rotation"])
    with pytest.raises(ValueError, match="repeat"):
        augmentation_tokens(batch, "view1", "view2", ["flip", "flip"])
    del batch["view2_params"]["flip"]
    with pytest.raises(KeyError, match="'flip'"):
        augmentation_tokens(batch, "view1", "view2", ["flip"])
    per_frame = default_collate([RandFlipClipd("view1", per_frame=True)(
        {"view1": torch.rand(1, 4, 8, 8), "view2": torch.rand(1, 4, 8, 8)})])
    with pytest.raises(ValueError, match="per frame"):
        augmentation_tokens(per_frame, "view1", "view2", ["flip"])


def test_head_reads_the_encodings_and_outputs_unit_vectors():
    torch.manual_seed(0)
    head = AugmentationAwareHead(32, ["time", "crop", "flip"], dim=32, depth=2, num_heads=4, out_features=16)
    features = torch.randn(6, 32)
    tokens = augmentation_tokens(_batch(0), "view1", "view2", ["time", "crop", "flip"])
    out = head(features, tokens)
    assert out.shape == (6, 16)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(6))
    identity = head(features, identity_tokens(["time", "crop", "flip"], 6))
    assert (out - identity).abs().max() > 1e-3  # the encodings reach the output
    changed = dict(tokens, time=tokens["time"] + 0.5)
    assert (head(features, changed) - out).abs().max() > 1e-4
    with pytest.raises(KeyError, match="missing"):
        head(features, {"time": tokens["time"]})


def test_head_without_encodings_sees_only_the_visual_token():
    head = AugmentationAwareHead(8, [], dim=16, depth=1, num_heads=2, out_features=4)
    assert head.type_embedding.shape == (1, 16)
    out = head(torch.randn(3, 8), {})
    assert out.shape == (3, 4)
    # extra entries are ignored: nothing but the visual token is read
    torch.testing.assert_close(head(torch.ones(3, 8), {"time": torch.ones(3, 1)}), head(torch.ones(3, 8), {}))
