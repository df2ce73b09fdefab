"""Linear probes solved by L-BFGS on frozen features: optimality, the head they load, the fit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from tests.downstream.helpers import action_batch, loader_of, plane_batch, quick_trainer
from ultrassl.downstream.action import ActionRecognition
from ultrassl.downstream.linear_probe import fit_logistic_regression, load_into_head
from ultrassl.downstream.plane_detection import PlaneDetection
from ultrassl.models.heads import LinearHead


def _objective(weight, bias, z, targets, class_weight, l2):
    return F.cross_entropy(z @ weight.T + bias, targets, weight=class_weight) + l2 * weight.pow(2).sum()


def _toy(n=120, f=6, k=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    targets = torch.arange(n) % k
    centres = 2.0 * torch.randn(k, f, generator=generator)
    features = 5.0 + 3.0 * (centres[targets] + torch.randn(n, f, generator=generator))  # not standardised
    return features, targets


@pytest.mark.parametrize("class_weight", [None, torch.tensor([1.0, 3.0, 0.5])])
def test_the_solution_is_the_regularised_optimum(class_weight):
    features, targets = _toy()
    l2 = 1e-2
    probe = fit_logistic_regression(features, targets, 3, class_weight, l2=l2)
    z = ((features - probe.mean) / torch.sqrt(probe.var + probe.eps)).double()
    weight = probe.weight.double().requires_grad_(True)
    bias = probe.bias.double().requires_grad_(True)
    cw = None if class_weight is None else class_weight.double()
    loss = _objective(weight, bias, z, targets, cw, l2)
    loss.backward()
    # first-order optimality of a strictly convex objective: the gradient vanishes
    assert weight.grad.abs().max() < 1e-4 and bias.grad.abs().max() < 1e-4
    # and no random perturbation does better
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        dw = 1e-2 * torch.randn(weight.shape, generator=generator, dtype=torch.float64)
        assert _objective(weight.detach() + dw, bias.detach(), z, targets, cw, l2) > loss.detach()
    assert probe.iterations > 0 and probe.losses[-1] == pytest.approx(float(loss), rel=1e-5)


def test_stronger_regularisation_shrinks_the_weights_and_class_weights_move_the_boundary():
    features, targets = _toy()
    norms = [fit_logistic_regression(features, targets, 3, l2=l2).weight.norm() for l2 in (1e-4, 1e-2, 1.0)]
    assert norms[0] > norms[1] > norms[2]
    plain = fit_logistic_regression(features, targets, 3, l2=1.0)
    favoured = fit_logistic_regression(features, targets, 3, torch.tensor([10.0, 1.0, 1.0]), l2=1.0)
    z = (features - plain.mean) / torch.sqrt(plain.var + plain.eps)
    predicted = lambda p: (z @ p.weight.T + p.bias).argmax(dim=1)  # noqa: E731
    assert (predicted(favoured) == 0).sum() > (predicted(plain) == 0).sum()


def test_the_loaded_head_computes_the_solved_logits_in_eval_mode():
    features, targets = _toy()
    probe = fit_logistic_regression(features, targets, 3)
    head = LinearHead(features.shape[1], 3, input_norm=True).eval()
    load_into_head(head, probe)
    expected = probe.logits(features)
    assert torch.allclose(head(features), expected, atol=1e-4)
    assert (head(features).argmax(dim=1) == targets).float().mean() > 0.9  # separable toy classes
    plain = LinearHead(features.shape[1], 3).eval()  # a fine-tune's head: standardisation folded in
    load_into_head(plain, probe)
    assert torch.allclose(plain(features), expected, atol=1e-4)


@pytest.mark.parametrize("scale", [1e-4, 1e4])
def test_the_probe_does_not_depend_on_the_scale_of_the_features(scale):
    # A randomly initialised encoder's pooled features can vary by 1e-3 across frames: an
    # absolute variance floor would flatten them and the probe would predict one class.
    features, targets = _toy()
    features = features - features.mean(dim=0)
    reference = fit_logistic_regression(features, targets, 3)
    scaled = fit_logistic_regression(features * scale, targets, 3)
    assert torch.equal(reference.logits(features).argmax(1), scaled.logits(features * scale).argmax(1))
    assert (scaled.logits(features * scale).argmax(1) == targets).float().mean() > 0.9
    for head in (LinearHead(features.shape[1], 3, input_norm=True).eval(), LinearHead(features.shape[1], 3).eval()):
        load_into_head(head, scaled)
        assert torch.allclose(head(features * scale), scaled.logits(features * scale), atol=1e-3)


def test_bad_targets_are_refused():
    features, targets = _toy()
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        fit_logistic_regression(features, targets, 2)


@pytest.mark.parametrize("task", ["plane_detection", "action_recognition"])
def test_fitting_a_linear_probe_solves_the_head_and_takes_no_sgd_step(checkpoint_factory, task):
    checkpoint = str(checkpoint_factory("order_geometry", "tiny3d"))
    if task == "plane_detection":
        model = PlaneDetection(checkpoint=checkpoint, protocol="linear", class_names=["bg", "a", "b", "c"],
                               class_weights=[1.0, 2.0, 2.0, 2.0], probe_passes=2)
        batch = plane_batch(n=8)
    else:
        model = ActionRecognition(num_classes=3, checkpoint=checkpoint, protocol="linear", probe_passes=2)
        batch = action_batch(n=9)
    encoder_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    trainer = quick_trainer(50, limit_val_batches=0)
    trainer.fit(model, loader_of(batch, repeats=2))
    assert trainer.global_step == 0  # solved, not stepped
    assert all(torch.equal(v, encoder_before[k]) for k, v in model.backbone.state_dict().items())
    fit = model.probe_fit
    assert fit.samples == 2 * 2 * len(next(iter(batch.values())))  # 2 passes over 2 copies of the batch
    assert 0 < fit.iterations and fit.converged == (fit.iterations < model.hparams.probe_max_iter)
    assert fit.l2 == model.hparams.probe_l2
    # the head holds the optimum of the task's own probe features
    model.eval()
    with torch.no_grad():
        features, targets = model.probe_features(batch)
    class_weight = model.probe_class_weight()
    reference = fit_logistic_regression(features, targets, model.head[-1].out_features,
                                        None if class_weight is None else class_weight, l2=model.hparams.probe_l2)
    with torch.no_grad():
        expected = reference.logits(features)
        assert torch.allclose(model.head(features), expected, atol=1e-3)


def test_lp_ft_starts_the_fine_tune_from_the_solved_probe(checkpoint_factory):
    checkpoint = str(checkpoint_factory("order_geometry", "tiny3d"))
    model = PlaneDetection(checkpoint=checkpoint, protocol="finetune", class_names=["bg", "a", "b", "c"],
                           class_weights=None, head_init="probe", probe_passes=1, freeze_encoder_norm=True, lr=0.0)
    batch = plane_batch(n=8)
    model.eval()
    with torch.no_grad():
        features, targets = model.probe_features(batch)
    reference = fit_logistic_regression(features, targets, 4, l2=model.hparams.probe_l2)
    trainer = quick_trainer(1, limit_val_batches=0)
    trainer.fit(model, loader_of(batch, repeats=1))
    assert trainer.global_step == 1  # a fine-tune: the probe is only its starting point
    assert model.probe_fit is not None and model.probe_fit.samples == 8
    # lr 0: still the probe's weights (rescaled for the head's BatchNorm eps where it has one)
    var = reference.var + reference.eps
    norm_eps = model.head[0].eps if len(model.head) > 1 else None
    weight = reference.weight * torch.sqrt((var + norm_eps) / var) if norm_eps else reference.weight / torch.sqrt(var)
    assert torch.allclose(model.head[-1].weight, weight, atol=1e-3)


def test_lp_ft_with_a_loading_worker_trains_the_first_epoch_as_in_process(checkpoint_factory):
    # The probe sweeps the training data before the first step; with a persistent worker that
    # sweep once reset the iterator the trainer held for epoch 0, which then ran no batch.
    checkpoint = str(checkpoint_factory("order_geometry", "tiny3d"))
    batches = [plane_batch(n=8, seed=seed) for seed in range(3)]

    def fine_tune(workers: int) -> tuple[int, dict]:
        torch.manual_seed(0)
        model = PlaneDetection(checkpoint=checkpoint, protocol="finetune", class_names=["bg", "a", "b", "c"],
                               class_weights=None, head_init="probe", probe_passes=2, dropout=0.5, lr=1e-2)
        loader = DataLoader(batches, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
        trainer = quick_trainer(-1, max_epochs=1, limit_val_batches=0)
        trainer.fit(model, loader)
        assert model.probe_fit.samples == 2 * 3 * 8  # two sweeps of three batches of 8 clips
        return trainer.global_step, model.state_dict()

    steps_in_process, in_process = fine_tune(0)
    steps_with_worker, with_worker = fine_tune(1)
    assert steps_in_process == steps_with_worker == len(batches)
    # the same batches, and the same dropout masks: the sweeps leave the global generator alone
    assert all(torch.equal(with_worker[k], in_process[k]) for k in in_process)


def test_frozen_encoder_norm_keeps_the_statistics_while_the_weights_learn(checkpoint_factory):
    checkpoint = str(checkpoint_factory("order_geometry", "tiny3d"))
    model = PlaneDetection(checkpoint=checkpoint, protocol="finetune", class_names=["bg", "a", "b", "c"],
                           class_weights=None, freeze_encoder_norm=True, lr=1e-2, backbone_lr_scale=1.0)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    quick_trainer(2, limit_val_batches=0).fit(model, loader_of(plane_batch(), repeats=2))
    after = model.backbone.state_dict()
    statistics = [k for k in after if "running_" in k]
    weights = [k for k in after if k.endswith("conv.weight")]
    assert statistics and weights
    assert all(torch.equal(after[k], before[k]) for k in statistics)
    assert all(not torch.equal(after[k], before[k]) for k in weights)
