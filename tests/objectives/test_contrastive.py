"""CVRL, VTDL and CATE on hand-built batches: losses from the shared pieces, switches, queue and EMA.

Batches are collated samples whose clips are random tensors and whose records are made by the
real samplers and transforms (or written out where the test needs exact values).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from jsonargparse import ArgumentParser
from monai.transforms import Compose
from torch.utils.data import default_collate

from ultrassl.losses.infonce import InfoNCELoss
from ultrassl.losses.ntxent import NTXentLoss
from ultrassl.models.cate_tokens import augmentation_tokens, identity_tokens
from ultrassl.objectives.cate import CATE
from ultrassl.objectives.cvrl import CVRL
from ultrassl.objectives.vtdl import VTDL
from ultrassl.transforms.spatial import RandFlipClipd, RandResizedCropClipd
from ultrassl.transforms.temporal import PairSampler, SampleFramesd

B, T, SIZE = 6, 4, 16


def _clips(seed: int, n: int = B) -> torch.Tensor:
    return torch.rand(n, 1, T, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _pair_batch(seed: int = 0, n: int = B) -> dict:
    """Two views with the records CATE reads (temporal, resized_crop, flip)."""
    views = ("view1", "view2")
    chain = Compose([SampleFramesd(PairSampler(T, 2), views),
                     *[RandResizedCropClipd(v, SIZE) for v in views], *[RandFlipClipd(v) for v in views]])
    chain.set_random_state(seed)
    clips = _clips(seed, n)
    samples = [chain({"n_frames": 60, "fps": 25.0, "view1": clip, "view2": clip.flip(-1)}) for clip in clips]
    return default_collate(samples)


def _triplet_batch(seed: int = 0, far_enough=(True,) * B) -> dict:
    return {
        "anchor": _clips(seed), "positive": _clips(seed + 1), "negative": _clips(seed + 2),
        "negative_params": {"temporal": {"negative_far_enough": torch.tensor(far_enough)}},
    }


# ---------------------------------------------------------------------------------- CVRL


def test_cvrl_loss_is_ntxent_of_the_projected_views():
    torch.manual_seed(0)
    model = CVRL(backbone="tiny3d", head_hidden=32, projection_dim=16).eval()
    batch = _pair_batch()
    outputs = model.objective_step(batch, "val")
    z = model.project(torch.cat([batch["view1"], batch["view2"]]))
    expected = NTXentLoss(0.1)(*z.chunk(2))
    torch.testing.assert_close(outputs["loss"], expected)
    assert 0.0 <= outputs["contrastive_acc"] <= 1.0
    # the paper's head: 3 x (Linear, BN, ReLU) then Linear to 128
    head = CVRL(backbone="tiny3d").projector
    assert [type(m).__name__ for m in head][-1] == "Linear" and len(head) == 10
    assert head[-1].out_features == 128 and head[0].out_features == 2048


def test_cvrl_gradients_reach_backbone_and_head():
    model = CVRL(backbone="tiny3d", head_hidden=32)
    model.objective_step(_pair_batch(), "train")["loss"].backward()
    assert model.backbone.layers[0].conv.weight.grad.abs().sum() > 0
    assert model.projector[0].weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------- VTDL


def test_vtdl_logits_are_positive_queue_and_temporal_negative():
    torch.manual_seed(0)
    model = VTDL(backbone="tiny3d", head_hidden=32, queue_size=20, momentum=0.5).eval()
    batch = _triplet_batch(far_enough=(True, True, False, True, True, True))
    model.queue.enqueue(F.normalize(torch.randn(9, 128), dim=1))
    outputs = model.objective_step(batch, "val")
    query = model.project(batch["anchor"])
    negative = model.project(batch["negative"])
    key = F.normalize(model.key_encoder(batch["positive"]), dim=1)
    mask = batch["negative_params"]["temporal"]["negative_far_enough"]
    expected = InfoNCELoss(0.07)(query, key, model.queue.keys(), negative, mask)
    torch.testing.assert_close(outputs["loss"], expected)
    assert int(model.queue.pointer) == 9  # validation does not enqueue


def test_vtdl_training_step_updates_the_key_encoder_then_enqueues_its_keys():
    torch.manual_seed(0)
    model = VTDL(backbone="tiny3d", head_hidden=32, queue_size=8, momentum=0.5)
    with torch.no_grad():  # the online encoder moved away from the copy (as after a step)
        for p in model.projector.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.key_encoder.module[1].parameters()]
    batch = _triplet_batch()
    model.objective_step(batch, "train")
    for ema, old, online in zip(model.key_encoder.module[1].parameters(), before, model.projector.parameters()):
        torch.testing.assert_close(ema, 0.5 * old + 0.5 * online)
    assert int(model.queue.pointer) == B
    key = F.normalize(model.key_encoder(batch["positive"]), dim=1)
    torch.testing.assert_close(model.queue.keys()[:B], key)  # the keys the loss just used
    model.objective_step(batch, "train")
    assert int(model.queue.pointer) == 4  # FIFO wrap
    assert all(not p.requires_grad for p in model.key_encoder.parameters())
    assert "queue.queue" in model.state_dict() and "key_encoder.module.0.layers.0.conv.weight" in model.state_dict()


def test_vtdl_accuracies_score_positive_and_negative_with_one_encoder():
    torch.manual_seed(0)
    model = VTDL(backbone="tiny3d", head_hidden=32, queue_size=8, momentum=0.5)
    with torch.no_grad():  # the online encoder moved away from its momentum copy
        for p in model.projector.parameters():
            p.add_(0.5)
    mask = (True, True, False, True, True, True)
    batch = _triplet_batch(far_enough=mask)
    model.eval()
    query = model.project(batch["anchor"])
    key, negative = (F.normalize(model.key_encoder(batch[k]), dim=1) for k in ("positive", "negative"))
    beats = ((query * key).sum(1) > (query * negative).sum(1))[torch.tensor(mask)]
    outputs = model.objective_step(batch, "val")
    torch.testing.assert_close(outputs["temporal_acc"], beats.float().mean())
    # the top-1 retrieval scores the negative as a key too, among the queue
    logits = InfoNCELoss(0.07).logits(query, key, model.queue.keys(), negative, torch.tensor(mask))
    torch.testing.assert_close(outputs["contrastive_acc"], (logits.argmax(1) == 0).float().mean())
    # a negative that is the positive's clip never beats it, nor loses: ties do not count
    batch["negative"] = batch["positive"]
    assert model.objective_step(batch, "val")["temporal_acc"] == 0.0
    # in training, scoring the negatives leaves the key encoder's BatchNorm statistics as the
    # positives alone set them
    model.train()
    reference = copy.deepcopy(model.key_encoder)
    model.objective_step(_triplet_batch(), "train")
    reference.update(model.key_encoder.module, 0.0)  # the weights of the updated copy
    reference(_triplet_batch()["positive"])
    for ours, theirs in zip(model.key_encoder.buffers(), reference.buffers()):
        torch.testing.assert_close(ours, theirs)


def test_vtdl_temporal_discrimination_switch():
    batch = _triplet_batch()
    with_td = VTDL(backbone="tiny3d", head_hidden=32, queue_size=16)
    without = VTDL(backbone="tiny3d", head_hidden=32, queue_size=16, temporal_discrimination=False)
    assert "temporal_acc" in with_td.objective_step(batch, "train")
    del batch["negative"]  # instance discrimination (BA) does not need the temporal negative
    outputs = without.objective_step(batch, "train")
    assert "temporal_acc" not in outputs and torch.isfinite(outputs["loss"])


def test_vtdl_gradient_flows_through_the_temporal_negative():
    model = VTDL(backbone="tiny3d", head_hidden=32, queue_size=16)
    batch = _triplet_batch()
    batch["negative"] = batch["negative"].clone().requires_grad_(True)
    model.objective_step(batch, "train")["loss"].backward()
    assert batch["negative"].grad.abs().sum() > 0
    masked = _triplet_batch(far_enough=(False,) * B)
    masked["negative"] = masked["negative"].clone().requires_grad_(True)
    model.eval()  # BatchNorm in training mode would couple the negatives to the anchors
    model.objective_step(masked, "val")["loss"].backward()
    assert masked["negative"].grad.abs().sum() == 0  # masked negatives are not learned from


def test_vtdl_reversed_negative_is_the_anchor_played_backwards_beside_the_temporal_one():
    torch.manual_seed(0)
    model = VTDL(backbone="tiny3d", head_hidden=32, queue_size=20, momentum=0.5, reversed_negative=True).eval()
    mask = (True, True, False, True, True, True)
    batch = _triplet_batch(far_enough=mask)
    model.queue.enqueue(F.normalize(torch.randn(9, 128), dim=1))
    outputs = model.objective_step(batch, "val")
    query, negative, played_backwards = (
        model.project(clips) for clips in (batch["anchor"], batch["negative"], batch["anchor"].flip(2)))
    key = F.normalize(model.key_encoder(batch["positive"]), dim=1)
    masks = torch.stack([torch.tensor(mask), torch.ones(B, dtype=torch.bool)], 1)
    expected = InfoNCELoss(0.07)(query, key, model.queue.keys(), torch.stack([negative, played_backwards], 1), masks)
    torch.testing.assert_close(outputs["loss"], expected)
    # scored as a momentum key, like the positive
    reversed_key = F.normalize(model.key_encoder(batch["anchor"].flip(2)), dim=1)
    beats = (query * key).sum(1) > (query * reversed_key).sum(1)
    torch.testing.assert_close(outputs["reversal_acc"], beats.float().mean())
    assert "temporal_acc" in outputs

    # without temporal discrimination the reversal is the only online negative
    alone = VTDL(backbone="tiny3d", head_hidden=32, queue_size=20, momentum=0.5, temporal_discrimination=False,
                 reversed_negative=True).eval()
    alone.load_state_dict(model.state_dict())
    del batch["negative"]
    outputs = alone.objective_step(batch, "val")
    torch.testing.assert_close(outputs["loss"], InfoNCELoss(0.07)(query, key, model.queue.keys(), played_backwards))
    assert "temporal_acc" not in outputs and "reversal_acc" in outputs


# ---------------------------------------------------------------------------------- CATE


def test_cate_loss_conditions_the_first_view_on_its_encodings():
    torch.manual_seed(0)
    model = CATE(backbone="tiny3d", tokens=["time", "crop", "flip"], head_dim=32, head_heads=4).eval()
    batch = _pair_batch()
    outputs = model.objective_step(batch, "val")
    f0, f1 = model.encode(torch.cat([batch["view1"], batch["view2"]])).chunk(2)
    tokens = augmentation_tokens(batch, "view1", "view2", ["time", "crop", "flip"])
    query = model.head(f0, tokens)
    target = model.head(f1, identity_tokens(["time", "crop", "flip"], B))
    torch.testing.assert_close(outputs["loss"], NTXentLoss(0.1)(query, target))
    # the encodings matter: the same clips with other recorded draws give another loss
    other = _pair_batch(seed=1)
    other["view1"], other["view2"] = batch["view1"], batch["view2"]
    assert not torch.allclose(model.objective_step(other, "val")["loss"], outputs["loss"])


def test_cate_without_encodings_ignores_the_records_and_symmetric_averages():
    model = CATE(backbone="tiny3d", tokens=[], head_dim=32).eval()
    batch = _pair_batch()
    loss = model.objective_step(batch, "val")["loss"]
    bare = {"view1": batch["view1"], "view2": batch["view2"]}  # no records at all
    torch.testing.assert_close(model.objective_step(bare, "val")["loss"], loss)

    model = CATE(backbone="tiny3d", tokens=["flip"], head_dim=32, symmetric=True).eval()
    f0, f1 = model.encode(torch.cat([batch["view1"], batch["view2"]])).chunk(2)
    identity = identity_tokens(["flip"], B)
    forward = NTXentLoss(0.1)(model.head(f0, model.tokens(batch, "view1", "view2")), model.head(f1, identity))
    backward = NTXentLoss(0.1)(model.head(f1, model.tokens(batch, "view2", "view1")), model.head(f0, identity))
    torch.testing.assert_close(model.objective_step(batch, "val")["loss"], (forward + backward) / 2)


def test_cate_refuses_unknown_encodings():
    with pytest.raises(ValueError, match="unknown augmentation encodings"):
        CATE(backbone="tiny3d", tokens=["rotation"])


@pytest.mark.parametrize(("cls", "argument", "value"), [
    (CVRL, "temperature", "0.2"), (VTDL, "temporal_discrimination", "false"), (CATE, "tokens", "[time, flip]"),
    (VTDL, "reversed_negative", "true"),
])
def test_every_argument_is_visible_to_the_config_parser(cls, argument, value):
    parser = ArgumentParser()
    parser.add_class_arguments(cls, "model")
    config = parser.parse_args([f"--model.{argument}={value}", "--model.backbone=tiny3d", "--model.lr=0.01"])
    model = cls(**config.model.as_dict())
    assert model.hparams.lr == 0.01 and model.hparams.backbone == "tiny3d"
    assert argument in model.hparams
