"""The downstream task modules on small hand-built batches: protocols, targets, maps, losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.downstream.helpers import SONONET, TINY3D, action_batch, loader_of, plane_batch, quick_trainer, saliency_batch
from ultrassl.downstream.action import ActionRecognition
from ultrassl.downstream.cine import best_frames, predict_cine_loop, window_indices
from ultrassl.downstream.plane_detection import PlaneDetection, balanced_class_weights
from ultrassl.downstream.saliency import SaliencyPrediction
from ultrassl.metrics.saliency import METRIC_NAMES, fixation_density_map

CLASSES = ["Background", "A", "B", "C"]


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict, module: torch.nn.Module) -> set[str]:
    return {k for k, v in module.state_dict().items() if v.dtype.is_floating_point and not torch.equal(before[k], v)}


# ---------------------------------------------------------------------------- protocols
@pytest.mark.parametrize("protocol", ["linear", "finetune"])
def test_linear_probe_freezes_the_encoder_and_finetune_trains_it(checkpoint_factory, protocol):
    model = PlaneDetection(checkpoint=str(checkpoint_factory("order_geometry", "tiny3d")), protocol=protocol,
                           class_names=CLASSES, class_weights=None, lr=1e-2, linear_solver="sgd")
    encoder_before, head_before = _snapshot(model.backbone), _snapshot(model.head)
    quick_trainer(3, limit_val_batches=0).fit(model, loader_of(plane_batch(), repeats=3))
    encoder_changed = _changed(encoder_before, model.backbone)
    assert _changed(head_before, model.head)
    if protocol == "linear":
        assert not encoder_changed  # weights and BatchNorm statistics alike
        assert model.training and not model.backbone.training
    else:
        assert any("conv.weight" in k for k in encoder_changed)
        assert any("running_mean" in k for k in encoder_changed)


def test_plane_target_is_the_centre_frame_and_loss_is_class_weighted():
    torch.manual_seed(0)
    weights = [1.0, 2.0, 3.0, 4.0]
    model = PlaneDetection(init="random", class_names=CLASSES, class_weights=weights, **TINY3D).eval()
    batch = plane_batch(frames=5)
    with torch.no_grad():
        logits = model(batch["clip"])
        expected = F.cross_entropy(logits, batch["clip_frame_labels"][:, 2], weight=torch.tensor(weights))
        assert torch.allclose(model._loss(logits, model._targets(batch)), expected)


def test_frame_backbone_sees_only_the_centre_frame_and_clip_backbone_the_whole_clip():
    torch.manual_seed(0)
    frame_model = PlaneDetection(init="random", class_names=CLASSES, **SONONET).eval()
    clip_model = PlaneDetection(init="random", class_names=CLASSES, **TINY3D).eval()
    clip = torch.rand(2, 1, 3, 32, 32)
    other = clip.clone()
    other[:, :, 0] = 0.0  # a different first frame, same centre frame
    with torch.no_grad():
        assert torch.equal(frame_model(clip), frame_model(other))
        assert torch.allclose(frame_model(clip), frame_model(clip[:, :, 1]))  # a frame alone
        assert not torch.allclose(clip_model(clip), clip_model(other))


@pytest.mark.parametrize("protocol", ["linear", "finetune"])
@pytest.mark.parametrize("backbone", [SONONET, TINY3D])
def test_class_activation_maps_average_to_the_logits(protocol, backbone):
    torch.manual_seed(0)
    model = PlaneDetection(init="random", class_names=CLASSES, protocol=protocol, **backbone)
    # non-trivial probe statistics, as after training
    if protocol == "linear":
        model.head[0].running_mean.uniform_(-1, 1)
        model.head[0].running_var.uniform_(0.5, 2.0)
    model.eval()
    clip = torch.rand(3, 1, 1 if backbone is SONONET else 4, 32, 32)
    with torch.no_grad():
        maps = model.class_activation_maps(clip, upsample=False)
        assert maps.shape[:2] == (3, len(CLASSES))
        assert torch.allclose(maps.flatten(2).mean(dim=-1), model(clip), atol=1e-5)
        assert model.class_activation_maps(clip).shape == (3, len(CLASSES), 32, 32)


def test_balanced_class_weights():
    weights = balanced_class_weights(torch.tensor([6, 2, 0, 4]))
    # n / (K_present * n_k) with n = 12, K_present = 3; the absent class weighs 1
    assert torch.allclose(weights, torch.tensor([12 / 18, 12 / 6, 1.0, 12 / 12]))


# ---------------------------------------------------------------------------- cine loops
def test_window_indices_centre_every_frame_and_clamp_at_the_ends():
    assert window_indices(4, 3).tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]
    assert window_indices(3, 1).tolist() == [[0], [1], [2]]


def _random_model_and_loop(backbone):
    """A random plane model of ``backbone`` and a 7-frame loop (1, 7, 32, 32)."""
    torch.manual_seed(0)
    return PlaneDetection(init="random", class_names=CLASSES, **backbone), torch.rand(1, 7, 32, 32)


@pytest.mark.parametrize("backbone", [SONONET, TINY3D])
def test_cine_loop_predictions_match_per_frame_forward_passes(backbone):
    model, loop = _random_model_and_loop(backbone)
    out = predict_cine_loop(model, loop, clip_frames=3, batch_size=4, with_cams=True)
    assert out["probabilities"].shape == (7, 4) and out["cams"].shape == (7, 32, 32)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        t = 6
        if backbone is SONONET:
            expected = model(loop[:, t][None])
        else:
            expected = model(loop[:, [5, 6, 6]][None])
    assert torch.allclose(out["probabilities"][t], torch.softmax(expected, dim=1)[0], atol=1e-6)


@pytest.mark.parametrize("backbone", [SONONET, TINY3D])
def test_predictions_of_chosen_frames_are_those_of_the_whole_loop(backbone):
    model, loop = _random_model_and_loop(backbone)
    whole = predict_cine_loop(model, loop, clip_frames=3, batch_size=4, with_cams=True)
    plain = predict_cine_loop(model, loop, clip_frames=3, batch_size=4)
    torch.testing.assert_close(plain["probabilities"], whole["probabilities"])  # one pass or two, same logits
    chosen = predict_cine_loop(model, loop, clip_frames=3, with_cams=True, frames=[6, 0, 3])
    torch.testing.assert_close(chosen["probabilities"], whole["probabilities"][[6, 0, 3]])
    torch.testing.assert_close(chosen["cams"], whole["cams"][[6, 0, 3]])
    for bad in ([], [7], [-1]):
        with pytest.raises(ValueError, match="frames"):
            predict_cine_loop(model, loop, clip_frames=3, frames=bad)


def test_best_frames_pick_the_most_confident_predicted_frame_per_plane():
    probabilities = torch.tensor([
        [0.9, 0.05, 0.05],
        [0.2, 0.7, 0.1],
        [0.1, 0.8, 0.1],
        [0.6, 0.3, 0.1],  # plane A at 0.3 but not predicted as A
    ])
    found = best_frames(probabilities, ["Background", "A", "B"])
    assert found == {"A": {"frame": 2, "probability": pytest.approx(0.8), "predicted_frames": [1, 2]}}


# ---------------------------------------------------------------------------- saliency
def test_saliency_output_is_a_distribution_and_loss_is_kl_of_the_density():
    torch.manual_seed(0)
    model = SaliencyPrediction(init="random", sigma_fraction=0.05, **TINY3D).eval()
    batch = saliency_batch(frames=3)
    batch["clip_fixations_valid"][1] = False  # a frame without fixations does not count
    with torch.no_grad():
        log_prob = model(batch["clip"])
        assert log_prob.shape == (4, 32, 32)
        assert torch.allclose(log_prob.exp().flatten(1).sum(dim=1), torch.ones(4), atol=1e-5)
        density = model.target_density(batch, (32, 32))
        expected_density = fixation_density_map(batch["clip_fixations"][:, 1], (32, 32), 0.05 * 32,
                                                batch["clip_fixations_valid"][:, 1])
        assert torch.equal(density, expected_density) and float(density[1].sum()) == 0.0
        kl = [float((density[i] * (torch.log(density[i].clamp_min(1e-30)) - log_prob[i]))[density[i] > 0].sum())
              for i in (0, 2, 3)]
        assert float(model._loss(log_prob, density)) == pytest.approx(sum(kl) / 3, rel=1e-5)


@pytest.mark.parametrize("protocol", ["linear", "finetune"])
def test_saliency_trains_and_validates_with_every_metric(checkpoint_factory, protocol):
    model = SaliencyPrediction(checkpoint=str(checkpoint_factory("order_geometry", "sononet16")), protocol=protocol,
                               n_splits=5, lr=1e-2)
    encoder_before, decoder_before = _snapshot(model.backbone), _snapshot(model.decoder)
    trainer = quick_trainer(2, limit_val_batches=1, num_sanity_val_steps=0)
    trainer.fit(model, loader_of(saliency_batch(frames=1), 2), loader_of(saliency_batch(frames=1, seed=1), 1))
    assert _changed(decoder_before, model.decoder)
    assert bool(_changed(encoder_before, model.backbone)) == (protocol == "finetune")
    scores = model.last_scores
    assert set(scores) == set(METRIC_NAMES) and all(math.isfinite(v) for v in scores.values())
    assert set(METRIC_NAMES) <= {k.split("/", 1)[1] for k in trainer.callback_metrics if k.startswith("val/")}


# ---------------------------------------------------------------------------- action
def test_multi_clip_probabilities_are_the_mean_of_the_clips_softmax():
    torch.manual_seed(0)
    model = ActionRecognition(num_classes=3, init="random", **TINY3D).eval()
    clips = action_batch(n=2, clips=3)["clip"]
    with torch.no_grad():
        averaged = model.predict_proba(clips)
        single = [torch.softmax(model(clips[:, i]), dim=1) for i in range(3)]
        features = model.clip_features(clips)
        single_features = torch.stack([model.clip_features(clips[:, i]) for i in range(3)]).mean(dim=0)
    assert torch.allclose(averaged, torch.stack(single).mean(dim=0), atol=1e-6)
    assert torch.allclose(features, single_features, atol=1e-6)


@pytest.mark.parametrize("protocol", ["linear", "finetune"])
def test_action_recognition_trains_and_reports(checkpoint_factory, protocol):
    model = ActionRecognition(num_classes=3, checkpoint=str(checkpoint_factory("cvrl", "tiny3d")), protocol=protocol,
                              lr=1e-2, linear_solver="sgd")
    encoder_before = _snapshot(model.backbone)
    trainer = quick_trainer(2, limit_val_batches=1, num_sanity_val_steps=0)
    trainer.fit(model, loader_of(action_batch(), 2), loader_of(action_batch(clips=2, seed=1), 1))
    assert bool(_changed(encoder_before, model.backbone)) == (protocol == "finetune")
    report = model.last_report
    assert 0.0 <= report["accuracy"] <= report["top5_accuracy"] == 1.0  # 3 classes: top-5 always hits
    assert sum(map(sum, report["confusion"])) == 6
