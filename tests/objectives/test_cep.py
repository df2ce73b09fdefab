"""CEP: prediction and cycle terms on hand-built embeddings, the ablation switches, gradients,
the sampler's windows and a short fit of the shipped config."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from jsonargparse import ArgumentParser

from ultrassl.cli import main as ultrassl_main
from ultrassl.losses.cycle import cosine_distance, cycle_pairs, mean_distance, prediction_pairs
from ultrassl.objectives.cep import CEP
from ultrassl.pipelines.cep import CEPPipeline

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pretrain"
B, T, SIZE = 6, 4, 16


def _batch(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {view: torch.rand(B, 1, T, SIZE, SIZE, generator=generator)
            for view in ("past", "current", "future", "instance")}


def _model(**options) -> CEP:
    torch.manual_seed(0)
    return CEP(backbone="tiny3d", backbone_kwargs={"channels": [4, 8, 8]}, projection_dim=16, head_hidden=16,
               queue_size=12, **options)


# ------------------------------------------------------------------------ the terms


def _shift_basis(n: int = 5):
    """Embeddings p, c, f = e1, e2, e3 per sample (the same for every sample), and a forward
    map that moves e1 -> e2 -> e3 -> e1 (a permutation of the axes) with its inverse."""
    eye = torch.eye(3)
    c = tuple(eye[i].repeat(n, 1) for i in range(3))
    shift = torch.roll(eye, 1, dims=0)  # shift @ e_i = e_{i+1}
    return c, (lambda x: x @ shift.T), (lambda x: x @ shift)


def test_perfect_predictors_give_zero_prediction_and_cycle_loss():
    c, forward, backward = _shift_basis()
    assert float(mean_distance(prediction_pairs(c, c, forward, backward))) == pytest.approx(0.0, abs=1e-6)
    assert float(mean_distance(cycle_pairs(c, c, forward, backward))) == pytest.approx(0.0, abs=1e-6)
    assert len(prediction_pairs(c, c, forward, backward)) == 6 and len(cycle_pairs(c, c, forward, backward)) == 6


def test_wrong_predictors_are_penalised_term_by_term():
    c, forward, backward = _shift_basis()
    identity = lambda x: x  # noqa: E731 - predicts "no change in time"
    # every prediction term compares a snippet with another, orthogonal one: d = 2
    assert float(mean_distance(prediction_pairs(c, c, identity, identity))) == pytest.approx(2.0)
    # the identity closes every cycle: the cycle term alone cannot tell time apart
    assert float(mean_distance(cycle_pairs(c, c, identity, identity))) == pytest.approx(0.0, abs=1e-6)
    # forward right, backward = forward: backward terms wrong, and cycles land two steps off
    assert float(mean_distance(prediction_pairs(c, c, forward, forward))) == pytest.approx(1.0)
    assert float(mean_distance(cycle_pairs(c, c, forward, forward))) == pytest.approx(2.0)
    assert cosine_distance(torch.tensor([[1.0, 0.0]]), torch.tensor([[-3.0, 0.0]])).item() == pytest.approx(4.0)


def test_without_the_backward_predictor_only_the_forward_terms_remain():
    c, forward, _ = _shift_basis()
    pairs = prediction_pairs(c, c, forward, None)
    assert len(pairs) == 3
    np.testing.assert_allclose(pairs[2][0].numpy(), c[2].numpy(), atol=1e-6)  # F(F(p)) = f


# ------------------------------------------------------------------------ the module


def test_loss_is_the_weighted_sum_and_the_switches_drop_exactly_their_terms():
    full = _model()
    outputs = full.objective_step(_batch(), "val")
    expected = outputs["instance_loss"] + outputs["prediction_loss"] + 0.1 * outputs["cycle_loss"]
    torch.testing.assert_close(outputs["loss"], expected)

    no_cycle = _model(cycle=False)
    no_cycle.load_state_dict(full.state_dict())
    ablated = no_cycle.objective_step(_batch(), "val")
    assert "cycle_loss" not in ablated
    for name in ("instance_loss", "prediction_loss", "backward_acc"):
        torch.testing.assert_close(ablated[name], outputs[name])
    torch.testing.assert_close(ablated["loss"], outputs["instance_loss"] + outputs["prediction_loss"])

    forward_only = _model(cycle=False, backward_predictor=False)
    forward_only.load_state_dict(full.state_dict(), strict=False)  # everything but B
    assert forward_only.backward_predictor is None
    calls = []
    original = forward_only.predict_forward
    forward_only.predict_forward = lambda x: calls.append(1) or original(x)
    ablated = forward_only.objective_step(_batch(), "val")
    assert "cycle_loss" not in ablated and "backward_acc" not in ablated
    torch.testing.assert_close(ablated["instance_loss"], outputs["instance_loss"])
    assert len(calls) == 4 + 1  # F(p), F(c), F(F(p)) and the forward accuracy
    assert float(ablated["prediction_loss"]) != pytest.approx(float(outputs["prediction_loss"]))
    with pytest.raises(ValueError, match="cycle term needs the backward predictor"):
        _model(backward_predictor=False)


def test_gradients_reach_the_encoder_both_heads_and_both_predictors():
    model = _model()
    model.objective_step(_batch(), "train")["loss"].backward()
    for name in ("backbone", "instance_head", "cycle_head", "forward_predictor", "backward_predictor"):
        grads = [p.grad for p in getattr(model, name).parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name
    assert all(p.grad is None for p in model.key_encoder.parameters())


def test_a_training_step_moves_the_targets_and_fills_the_queue():
    model = _model()
    before = [p.clone() for p in model.key_encoder.parameters()]
    model.instance_head[0].weight.data.add_(1.0)  # the online encoder moved away from its copy
    model.objective_step(_batch(), "train")
    assert any(not torch.equal(a, b) for a, b in zip(before, model.key_encoder.parameters()))
    assert int(model.queue.pointer) == B
    keys = model.queue.queue[:B]
    torch.testing.assert_close(keys.norm(dim=1), torch.ones(B))


def test_every_argument_is_visible_to_the_config_parser():
    parser = ArgumentParser()
    parser.add_class_arguments(CEP, "model")
    config = parser.parse_args(["--model.cycle=false", "--model.backward_predictor=false", "--model.backbone=tiny3d"])
    model = CEP(**config.model.as_dict())
    assert model.hparams.cycle is False and model.backward_predictor is None


# ------------------------------------------------------------------------ the data


def test_the_pipeline_shares_one_draw_across_the_snippets_and_another_for_the_instance_view(tmp_path):
    from tests.sweeps import make_fetal_manifest
    from ultrassl.data.datamodule import ManifestDataModule

    manifest = make_fetal_manifest(tmp_path, n_sweeps=2, n_frames=30)
    module = ManifestDataModule(manifest, CEPPipeline(size=(24, 32), num_frames=3, stride=2), batch_size=2,
                                clips_per_video=2, seed=1)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    indices = [batch[f"{view}_frame_indices"] for view in ("past", "current", "future", "instance")]
    past, current, future, instance = (torch.stack(list(i), dim=1) if isinstance(i, list) else i for i in indices)
    torch.testing.assert_close(current[:, 0], past[:, -1] + 2)  # contiguous snippets, stride 2
    torch.testing.assert_close(future[:, 0], current[:, -1] + 2)
    assert bool(((instance >= past[:, :1]) & (instance <= future[:, -1:])).all())  # inside the window
    boxes = {view: torch.stack(batch[f"{view}_params"]["resized_crop"]["box"], dim=1)
             for view in ("past", "current", "future", "instance")}
    torch.testing.assert_close(boxes["past"], boxes["current"])
    torch.testing.assert_close(boxes["past"], boxes["future"])
    assert batch["past"].shape == (2, 1, 3, 24, 32)


# ------------------------------------------------------------------------ a short fit


@pytest.mark.slow
def test_fit_with_the_shipped_config_lowers_the_loss_and_keeps_it_down(sweeps, tmp_path, one_thread):
    # 60 steps: a collapsing instance term (the momentum of 0.9 did it) falls for a dozen
    # steps and then climbs back towards log(1 + K); the loss must keep falling past that.
    pipeline = "--data.init_args.pipeline.init_args"
    status = ultrassl_main([
        "fit", "-c", str(CONFIGS / "cep.yaml"), f"--data.init_args.manifest={sweeps}",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.max_steps=60", "--trainer.max_epochs=-1",
        "--trainer.log_every_n_steps=1", "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--data.init_args.batch_size=8", "--data.init_args.clips_per_video=2",
        f"{pipeline}.size=[32,40]", f"{pipeline}.num_frames=3", f"{pipeline}.color_prob=0",
        "--model.init_args.queue_size=8",
    ])
    assert status == 0
    (metrics,) = tmp_path.glob("logs/version_*/metrics.csv")
    rows = list(csv.DictReader(metrics.open()))

    def thirds(key: str) -> list[float]:
        values = [float(r[key]) for r in rows if r.get(key)][1:]  # step 0 scores against a random queue
        third = len(values) // 3
        return [sum(values[i * third:(i + 1) * third]) / third for i in range(3)]

    first, middle, last = thirds("train/loss_step")
    assert last < middle < first - 0.3, (first, middle, last)
    instance = thirds("train/instance_loss_step")
    assert instance[2] < instance[1], instance
    prediction = thirds("train/prediction_loss_step")
    assert prediction[2] < prediction[0], prediction
