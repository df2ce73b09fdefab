"""Anatomy-aware order + geometry: labels from recorded parameters, both modes, both geometry kinds.

Batches are built the way the data pipeline will build them: a clip of N frames, shuffled by
RandPermuteFramesd and transformed by RandAffineClipd (one affine per clip, parameters recorded
under ``"{key}_params"["affine"]``), collated by torch's default_collate.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jsonargparse import ArgumentParser
from torch.utils.data import DataLoader, default_collate

from ultrassl.models.heads import PairwiseOrderHead
from ultrassl.objectives.order_geometry import OrderGeometry
from ultrassl.transforms.pretext import RandPermuteFramesd
from ultrassl.transforms.spatial import RandAffineClipd

N_FRAMES = 4
SIZE = 32


def moving_bar_clip(rng: np.random.Generator) -> torch.Tensor:
    """(1, N, SIZE, SIZE) clip of a vertical bar moving ~6 px per frame, left or right.

    The bar's position orders the frames (up to reversal, which the order classes ignore).
    """
    x0, step = rng.uniform(3, 8), rng.uniform(5, 7)
    xs = np.arange(SIZE)
    frames = [np.exp(-0.5 * ((xs - (x0 + t * step)) / 1.5) ** 2)[None].repeat(SIZE, 0) for t in range(N_FRAMES)]
    clip = torch.tensor(np.stack(frames), dtype=torch.float32)[None]
    return clip.flip(-1) if rng.random() < 0.5 else clip


def make_samples(n: int, mode: str, geometry: str, seed: int) -> list[dict]:
    """Samples as the data pipeline makes them, through the real pretext transforms.

    parallel: ``order_clip`` shuffled, ``geometry_clip`` transformed; sequential: ``clip`` both.
    Regression: rotation within +-45 degrees and scale within 1 +- 0.2 (6 recorded values);
    classification: one of 4 right-angle rotations.
    """
    rng = np.random.default_rng(seed)
    order_key, geometry_key = ("order_clip", "geometry_clip") if mode == "parallel" else ("clip", "clip")
    shuffle = RandPermuteFramesd(order_key, num_frames=N_FRAMES).set_random_state(seed)
    if geometry == "classification":
        affine = RandAffineClipd(geometry_key, discrete_rotations=(0, 90, 180, 270))
    else:
        affine = RandAffineClipd(geometry_key, rotate_range_deg=45, scale_range=0.2)
    affine.set_random_state(seed + 1)
    samples = []
    for _ in range(n):
        clip = moving_bar_clip(rng)
        sample = {order_key: clip, geometry_key: clip}
        samples.append(affine(shuffle(sample)))
    return samples


def evaluate(model: OrderGeometry, batch: dict) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        outputs = model.objective_step(batch, stage="val")
    model.train()
    return {name: float(value) for name, value in outputs.items()}


def fit(model: OrderGeometry, samples: list[dict], max_steps: int) -> None:
    trainer = L.Trainer(
        max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(samples, batch_size=16, shuffle=True))


@pytest.mark.parametrize(
    ("mode", "geometry", "backbone", "lr", "steps"),
    [
        ("parallel", "regression", "tiny3d", 3e-3, 60),
        ("parallel", "classification", "tiny3d", 3e-3, 60),
        ("sequential", "regression", "tiny3d", 3e-3, 60),
        ("sequential", "classification", "tiny3d", 3e-3, 60),
        ("parallel", "regression", "sononet16", 1e-3, 45),  # the paper's per-frame encoder
    ],
)
def test_short_fit_learns_both_tasks(mode, geometry, backbone, lr, steps):
    L.seed_everything(0, verbose=False)
    model = OrderGeometry(
        mode=mode, geometry=geometry, backbone=backbone, head_hidden=64,
        lr=lr, scheduler="constant",
    )
    held_out = default_collate(make_samples(192, mode, geometry, seed=1))
    before = evaluate(model, held_out)
    fit(model, make_samples(480, mode, geometry, seed=0), steps)
    after = evaluate(model, held_out)

    assert after["loss"] < 0.85 * before["loss"], (before, after)
    assert after["order_loss"] < before["order_loss"]
    assert after["geometry_loss"] < before["geometry_loss"]
    assert after["order_acc"] > 2 / 12, after  # chance is 1/12
    if geometry == "classification":
        assert after["geometry_acc"] > 0.3, after  # chance is 1/4


def test_labels_come_from_the_recorded_parameters():
    model = OrderGeometry(backbone="tiny3d").eval()
    batch = default_collate(make_samples(8, "parallel", "regression", seed=2))
    outputs = model.objective_step(batch, "val")
    logits = model.predict_order(batch["order_clip"])
    target = batch["order_clip_params"]["permutation"]["index"]
    torch.testing.assert_close(outputs["order_loss"], F.cross_entropy(logits, target))
    normalised = torch.stack(batch["geometry_clip_params"]["affine"]["normalised"], dim=1).float()
    prediction = model.predict_geometry(batch["geometry_clip"])
    torch.testing.assert_close(outputs["geometry_mae"], (prediction - normalised).abs().mean())
    torch.testing.assert_close(outputs["loss"], outputs["order_loss"] + outputs["geometry_loss"])


def test_frame_encoder_order_head_sees_frames_in_shuffled_order():
    model = OrderGeometry(backbone="sononet16", head_hidden=16).eval()
    features = model.backbone.num_features
    assert model.num_order_classes == 12
    assert model.order_head.in_features == N_FRAMES * features
    assert OrderGeometry(backbone="sononet16", order_head="concat").order_head[0].in_features == N_FRAMES * features
    assert model.geometry_head[0].in_features == features
    clip = torch.rand(2, 1, N_FRAMES, SIZE, SIZE)
    with torch.no_grad():
        order_in, geometry_in = model._features(clip)
        swapped_order_in, swapped_geometry_in = model._features(clip[:, :, [1, 0, 2, 3]])
    assert not torch.allclose(order_in, swapped_order_in)  # order is visible to the order head
    torch.testing.assert_close(geometry_in, swapped_geometry_in)  # geometry does not depend on it
    assert OrderGeometry(backbone="tiny3d").order_head[0].in_features == 32


def test_pairwise_order_head_gives_a_time_reversal_the_same_logits():
    """Frames whose features move along a line in time: a permutation of them and the same
    permutation of the time-reversed frames are one order class, and get one prediction."""
    torch.manual_seed(0)
    head = PairwiseOrderHead(in_features=8, num_frames=N_FRAMES, hidden_features=16, out_features=12).eval()
    start, velocity = torch.randn(5, 1, 8), torch.randn(5, 1, 8)
    times = torch.arange(N_FRAMES, dtype=torch.float32)[None, :, None]
    forward, backward = start + times * velocity, start + times.flip(1) * velocity
    permutation = [2, 0, 3, 1]
    with torch.no_grad():
        logits = head(forward[:, permutation].flatten(1))
        reversed_logits = head(backward[:, permutation].flatten(1))
        other_logits = head(forward[:, [0, 2, 1, 3]].flatten(1))
    torch.testing.assert_close(logits, reversed_logits)
    assert not torch.allclose(logits, other_logits)  # another class, another prediction
    with pytest.raises(ValueError, match="expects"):
        head(forward)  # (B, N, F) instead of (B, N x F)


def test_pairwise_order_head_with_a_frame_projection():
    """The distances are taken on a projection of each frame's feature: the head still sees
    each pair symmetrically (swapping two frames' features swaps nothing in their pair code), the
    encoder's features reach the classes only through it, and a bad width is refused."""
    torch.manual_seed(0)
    head = PairwiseOrderHead(in_features=8, num_frames=N_FRAMES, hidden_features=16, out_features=12,
                             projection_features=24).eval()
    assert head.project[0].in_features == 8 and head.pair[0].in_features == 24
    frames = torch.randn(5, N_FRAMES, 8)
    with torch.no_grad():
        logits = head(frames.flatten(1))
        projected = head.project(frames.flatten(0, 1)).reshape(5, N_FRAMES, -1)
        by_hand = head.classifier(head.pair((projected[:, head.pairs[:, 0]] - projected[:, head.pairs[:, 1]])
                                            .abs().flatten(0, 1)).reshape(5, -1))
    torch.testing.assert_close(logits, by_hand)
    model = OrderGeometry(backbone="tiny2d", order_projection=32)
    assert model.order_head.project[0].in_features == model.backbone.num_features
    assert isinstance(OrderGeometry(backbone="tiny2d").order_head.project, torch.nn.Identity)
    with pytest.raises(ValueError, match="projection_features"):
        PairwiseOrderHead(in_features=8, num_frames=N_FRAMES, hidden_features=16, out_features=12,
                          projection_features=-1)
    with pytest.raises(ValueError, match="order_projection"):
        OrderGeometry(backbone="tiny3d", order_projection=32)
    with pytest.raises(ValueError, match="order_projection"):
        OrderGeometry(backbone="tiny2d", order_head="concat", order_projection=32)


@pytest.mark.parametrize("order_head, projection", [("pairwise", 0), ("pairwise", 64), ("concat", 0)])
def test_frame_backbone_learns_order_with_either_head(order_head, projection):
    L.seed_everything(0, verbose=False)
    model = OrderGeometry(
        backbone="tiny2d", order_head=order_head, head_hidden=64, lr=3e-3, scheduler="constant",
        geometry_weight=0.0, order_projection=projection,
    )
    held_out = default_collate(make_samples(192, "parallel", "regression", seed=1))
    fit(model, make_samples(480, "parallel", "regression", seed=0), 60)
    assert evaluate(model, held_out)["order_acc"] > 2 / 12  # chance is 1/12


def test_geometry_weight_and_geometry_kind():
    model = OrderGeometry(mode="sequential", backbone="tiny3d", geometry="classification",
                          num_rotation_classes=4, geometry_weight=0.5).eval()
    batch = default_collate(make_samples(8, "sequential", "classification", seed=3))
    outputs = model.objective_step(batch, "val")
    torch.testing.assert_close(outputs["loss"], outputs["order_loss"] + 0.5 * outputs["geometry_loss"])
    assert model.geometry_head[-1].out_features == 4 and "geometry_acc" in outputs


def test_mistakes_are_reported_clearly():
    batch = default_collate(make_samples(4, "parallel", "regression", seed=4))
    with pytest.raises(ValueError, match="num_geometry_params to 6"):
        OrderGeometry(backbone="tiny3d", num_geometry_params=3).objective_step(batch, "train")
    with pytest.raises(ValueError, match="discrete_rotations"):  # no discrete rotations drawn
        OrderGeometry(backbone="tiny3d", geometry="classification").objective_step(batch, "train")
    del batch["order_clip_params"]
    with pytest.raises(KeyError, match="'permutation'"):
        OrderGeometry(backbone="tiny3d").objective_step(batch, "train")
    with pytest.raises(ValueError, match=r"expects clips \(B, C, 4, H, W\)"):
        OrderGeometry(backbone="tiny3d").predict_order(torch.rand(2, 1, 5, SIZE, SIZE))
    with pytest.raises(ValueError, match="differ"):
        OrderGeometry(mode="sequential", order_key="a", geometry_key="b")


def test_every_argument_is_visible_to_the_config_parser():
    parser = ArgumentParser()
    parser.add_class_arguments(OrderGeometry, "model")
    config = parser.parse_args(["--model.mode=sequential", "--model.backbone=sononet16", "--model.lr=0.01"])
    model = OrderGeometry(**config.model.as_dict())
    assert model.hparams.mode == "sequential" and model.hparams.lr == 0.01 and model.frame_wise
    assert model.order_key == model.geometry_key == "clip"
