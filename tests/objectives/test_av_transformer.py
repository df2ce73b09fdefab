"""The audio-visual transformer: sharing and its parameter counts, orthogonal private cores,
gradients into both CNNs and the shared factors, content-aware negatives, log-mel features,
segments whose audio covers their frames, the missing-audio error, and audio that follows the
motion in the embedded clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.media import write_test_video
from ultrassl.data.datasets import ManifestDataset
from ultrassl.data.indexing import index_folder
from ultrassl.errors import ClipReadError
from ultrassl.io import read_clip
from ultrassl.losses.negative_sampling import content_aware_negatives
from ultrassl.models.av_transformer import (AudioVisualTransformers, FactorisedLinear, TransformerStack,
                                            transformer_parameters)
from ultrassl.objectives.av_transformer import ALIGNED, OTHER, SHIFTED, AudioVisualTransformer
from ultrassl.pipelines.audio_visual import AudioVisualPipeline
from ultrassl.transforms.audio import log_mel_spectrogram, mel_filterbank
from ultrassl.transforms.io import LoadClipd, audio_key, meta_key
from ultrassl.transforms.temporal import MultiSegmentSampler, SampleFramesd

B, S = 4, 4


def _batch(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {"visual": torch.rand(B, S, 3, 2, 16, 16, generator=generator),
            "audio": torch.randn(B, S, 1, 16, 12, generator=generator),
            "path": [f"clip{i}.mp4" for i in range(B)]}


def _model(**options) -> AudioVisualTransformer:
    torch.manual_seed(0)
    return AudioVisualTransformer(backbone="tiny3d", backbone_kwargs={"channels": [4, 8, 8]}, in_channels=3,
                                  num_segments=S, width=32, depth=2, heads=4, rank=8, audio_channels=(4, 8),
                                  num_negatives=4, **options)


# ------------------------------------------------------------------------ sharing


def test_full_sharing_saves_at_least_80_percent_at_the_same_width_and_depth():
    for size in (dict(width=64, depth=2, heads=4, rank=16), dict(width=768, depth=12, heads=12, rank=128)):
        counts = transformer_parameters(**size)
        assert counts["none"] > counts["layer"] > counts["full"]
        assert counts["full"] <= 0.2 * counts["none"], (size, counts)


def test_cross_layer_sharing_reuses_one_layer_and_the_factor_u_is_shared():
    assert len(TransformerStack(16, depth=3, heads=2, ffn_width=32, max_tokens=4, sharing="none").layers) == 3
    assert len(TransformerStack(16, depth=3, heads=2, ffn_width=32, max_tokens=4, sharing="layer").layers) == 1
    model = _model()
    layers = [model.transformers.visual.layers[0], model.transformers.audio.layers[0],
              model.transformers.multimodal.layers[0]]
    assert all(isinstance(layer.query, FactorisedLinear) for layer in layers)
    assert layers[0].query.shared is layers[1].query.shared is layers[2].query.shared
    assert layers[0].query.private is not layers[1].query.private


def test_private_cores_stay_orthogonal_after_training_steps():
    model = _model()
    optimiser = torch.optim.AdamW(model.parameters(), lr=0.05)
    before = model.transformers.visual.layers[0].query.core.weight.detach().clone()
    for step in range(3):
        loss = model.objective_step(_batch(step), "train")["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    cores = [m.core.weight for m in model.modules() if isinstance(m, FactorisedLinear)]
    assert len(cores) == 3 * 6
    for core in cores:
        torch.testing.assert_close(core @ core.T, torch.eye(core.shape[0]), atol=1e-4, rtol=0)
    assert not torch.allclose(before, model.transformers.visual.layers[0].query.core.weight)  # it did move


def test_gradients_reach_both_cnns_and_the_shared_factors():
    model = _model()
    outputs = model.objective_step(_batch(), "train")
    assert {"loss", "mep_loss", "cpp_loss", "cpp_acc", "mep_acc"} <= set(outputs)
    outputs["loss"].backward()
    for name in ("backbone", "audio_cnn"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0, name
    for role, factor in model.transformers.shared.factors.items():
        assert factor.grad is not None and float(factor.grad.abs().sum()) > 0, role


def test_a_segments_picture_and_sound_share_one_position_in_the_multimodal_transformer():
    """With identical modality transformers, identical inputs and one modality embedding, the
    multimodal output of visual segment i equals that of audio segment i: only the modality tells
    them apart, so an aligned pair sits at matching positions from the first step."""
    torch.manual_seed(0)
    transformers = AudioVisualTransformers(width=16, depth=2, heads=2, rank=4, num_segments=S, sharing="full")
    transformers.audio.load_state_dict(transformers.visual.state_dict())
    with torch.no_grad():
        transformers.modality[1] = transformers.modality[0]
    tokens = torch.randn(2, S, 16)
    _, _, fused = transformers(tokens, tokens)
    torch.testing.assert_close(fused[:, 1 : 2 + S], fused[:, 2 + S :])
    with torch.no_grad():
        transformers.modality[1] += 1.0  # the modality embedding is what separates them
    _, _, fused = transformers(tokens, tokens)
    assert not torch.allclose(fused[:, 1 : 2 + S], fused[:, 2 + S :])


def test_misaligned_audio_is_shifted_own_audio_or_another_videos_and_is_scored_per_kind():
    model = _model(offset_negative_prob=0.5)
    b, s = 8, S
    audio = torch.arange(b * s, dtype=torch.float32).reshape(b, s, 1).expand(b, s, 3).clone()
    same_video = torch.eye(b, dtype=torch.bool)
    same_video[0, 1] = same_video[1, 0] = True  # items 0 and 1 read from one file
    kinds = set()
    for seed in range(20):
        paired, pairing = model._misalign(audio, same_video, torch.Generator().manual_seed(seed))
        assert int((pairing != ALIGNED).sum()) == b // 2
        for i in range(b):
            source = paired[i, :, 0].long() // s  # the clip each segment's audio came from
            if pairing[i] == ALIGNED:
                torch.testing.assert_close(paired[i], audio[i])
            elif pairing[i] == SHIFTED:
                assert (source == i).all() and not torch.equal(paired[i], audio[i])
                shift = int(paired[i, 0, 0]) - i * s
                torch.testing.assert_close(paired[i], torch.roll(audio[i], -shift, dims=0))
            else:
                other = int(source[0])
                assert not same_video[i, other] and torch.equal(paired[i], audio[other])
            kinds.add(int(pairing[i]))
    assert kinds == {ALIGNED, SHIFTED, OTHER}
    # a pair head that calls every clip aligned: right on half the clips, and on each kind of
    # misaligned clip a balanced accuracy of exactly one half
    model.eval()
    model.pair_head = _Constant(1.0)
    generator = torch.Generator().manual_seed(1)
    batch = {"visual": torch.rand(8, S, 3, 2, 16, 16, generator=generator),
             "audio": torch.randn(8, S, 1, 16, 12, generator=generator), "path": [f"c{i}.mp4" for i in range(8)]}
    outputs = model.objective_step(batch, "val")
    assert float(outputs["cpp_acc"]) == 0.5
    assert float(outputs["cpp_shifted_acc"]) == 0.5 and float(outputs["cpp_other_acc"]) == 0.5


class _Constant(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 1), self.value)


def test_held_out_draws_repeat_and_training_draws_do_not():
    model = _model()
    model.eval()
    first, second = (model.objective_step(_batch(), "val") for _ in range(2))
    torch.testing.assert_close(first["loss"], second["loss"])


# ------------------------------------------------------------------------ negatives


def test_content_aware_sampling_drops_the_extremes_and_favours_the_similar():
    angles = torch.linspace(0.0, torch.pi, 21)  # candidate i is i * 9 degrees from the positive
    candidates = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    positive = candidates[:1]
    invalid = torch.zeros(1, 21, dtype=torch.bool)
    invalid[0, 0] = True  # the positive itself
    drawn = torch.cat([content_aware_negatives(positive, candidates, 4, invalid, drop_near=0.1, drop_far=0.1,
                                               generator=torch.Generator().manual_seed(seed))
                       for seed in range(300)]).flatten()
    counts = torch.bincount(drawn, minlength=21)
    # 20 valid candidates: the 2 nearest (1, 2) and the 2 farthest (19, 20) are never drawn
    assert counts[0] == 0 and counts[[1, 2, 19, 20]].sum() == 0
    assert (counts[3:19] > 0).all()
    assert counts[3:8].sum() > 2 * counts[14:19].sum()  # the similar are favoured


def test_another_clips_audio_is_drawn_uniformly_unless_asked_to_be_content_aware():
    """The other clip of a misaligned pair: uniform among the other videos by default; with
    content_aware_pairs, CANS favours the clips whose sound is most alike."""
    same = torch.eye(8, dtype=torch.bool)
    angle = torch.arange(8, dtype=torch.float32) * 0.3  # clip i's sound turns away from clip 0's with i
    summaries = torch.stack([angle.cos(), angle.sin(), torch.zeros(8), torch.zeros(8)], dim=1)
    counts = {}
    for aware in (False, True):
        model = _model(content_aware_pairs=aware)
        drawn = torch.stack([model._other_clips(summaries, same, torch.Generator().manual_seed(seed))[0]
                             for seed in range(700)])
        counts[aware] = torch.bincount(drawn, minlength=8)
    assert counts[False][0] == 0 and (counts[False][1:] > 60).all()  # about 100 each
    assert counts[True][0] == 0 and counts[True][1:4].sum() > 2 * counts[True][5:8].sum()


def test_another_items_of_the_same_video_are_never_negatives():
    model = _model()
    batch = _batch()
    batch["path"] = ["a.mp4", "a.mp4", "b.mp4", "c.mp4"]
    same = torch.tensor([[True, True, False, False], [True, True, False, False],
                         [False, False, True, False], [False, False, False, True]])
    others = model._other_clips(torch.randn(4, 8), same, torch.Generator().manual_seed(0))
    assert int(others[0]) in (2, 3) and int(others[1]) in (2, 3)
    targets = torch.randn(4, S, 8)
    mask = torch.zeros(4, S, dtype=torch.bool)
    mask[0, 1] = True
    for seed in range(20):
        own = torch.tensor([1])
        invalid = (same[[0]] & (torch.arange(4)[None] != 0)).repeat_interleave(S, dim=1)
        chosen = model._negatives(targets.flatten(0, 1)[own], targets.flatten(0, 1), own, invalid,
                                  torch.Generator().manual_seed(seed))
        assert not bool(((chosen >= S) & (chosen < 2 * S)).any())  # item 1 is the same video
        assert not bool((chosen == 1).any())


# ------------------------------------------------------------------------ audio


def test_a_tone_peaks_in_its_mel_band():
    rate, hz = 16000, 1000.0
    tone = torch.sin(2 * torch.pi * hz * torch.arange(rate // 2) / rate)[None]
    spectrogram = log_mel_spectrogram(tone, rate, n_mels=40, hop_length=160)
    assert spectrogram.shape == (1, 40, 1 + (rate // 2) // 160)
    bank = mel_filterbank(rate, 512, 40, 50.0, 8000.0)
    band = int(bank[:, int(round(hz / (rate / 512)))].argmax())
    assert int(spectrogram[0].mean(dim=1).argmax()) == band


def test_each_segment_gets_the_audio_of_its_frames_to_the_sample(tmp_path):
    path = tmp_path / "av.mp4"
    write_test_video(path, n_frames=40, size=(32, 64), fps=25, with_audio=True, audio_frequency_hz=440.0)
    views = tuple(f"seg{i}" for i in range(4))
    sampler = MultiSegmentSampler(4, 3, stride=2, segment_length=9).set_random_state(3)
    sample = LoadClipd(views, with_audio=True)(SampleFramesd(sampler, views)({"path": str(path), "n_frames": 40}))
    whole = read_clip(path, None, with_audio=True)
    rate = whole.audio_sample_rate
    for view in views:
        times = np.asarray(sample[meta_key(view)]["timestamps_s"])
        audio = sample[audio_key(view)].numpy()
        assert audio.shape[1] == int(round((times[-1] + 1 / 25 - times[0]) * rate))
        start = int(round((times[0] - whole.timestamps_s[0]) * rate))
        np.testing.assert_allclose(audio, whole.audio[:, start : start + audio.shape[1]], atol=1e-6)


def test_a_video_without_sound_is_an_error_naming_it(tmp_path):
    path = tmp_path / "silent.mp4"
    write_test_video(path, n_frames=40, size=(32, 64))
    pipeline = AudioVisualPipeline(size=(16, 16), num_segments=2, num_frames=2, stride=2)
    dataset = ManifestDataset(index_folder(tmp_path, progress=False), pipeline.train_transform())
    with pytest.raises(ClipReadError, match="no audio track") as caught:
        dataset[0]
    assert caught.value.path == str(path)


def test_the_pipeline_gives_stacked_segments_and_spectrograms(tmp_path):
    path = tmp_path / "av.mp4"
    write_test_video(path, n_frames=40, size=(32, 64), fps=25, with_audio=True)
    pipeline = AudioVisualPipeline(size=(16, 16), num_segments=3, num_frames=2, stride=2, num_audio_frames=10,
                                   n_mels=20)
    chain = pipeline.train_transform()
    chain.set_random_state(0)
    sample = chain({"path": str(path), "n_frames": 40, "format": "video"})
    assert sample["visual"].shape == (3, 3, 2, 16, 16) and sample["audio"].shape == (3, 1, 20, 10)
    assert torch.isfinite(sample["audio"]).all()


def test_the_embedded_motion_audio_follows_what_moves():
    """The pitch of each segment of a synthesized clip tracks the object: read back from the
    sound alone, it matches the object's own track (aligned) better than the track shifted by
    one or more segments (offset), for the moving classes."""
    from ultrassl.synth.motion import AUDIO_SAMPLE_RATE, MOTION_CLASSES, class_trajectory, pitch_track, trajectory_audio

    fps, n_frames, size, segments = 25.0, 32, (64, 64), 4
    aligned_errors, offset_errors = [], []
    for k, name in enumerate(MOTION_CLASSES):
        rng = np.random.default_rng(k)
        trajectory = class_trajectory(name, rng, n_frames, size)
        audio = trajectory_audio(trajectory, size, fps, rng)
        per_segment = np.array_split(audio, segments)
        heard = []
        for piece in per_segment:
            spectrum = np.abs(np.fft.rfft(piece * np.hanning(len(piece))))
            heard.append(np.log2(np.argmax(spectrum) * AUDIO_SAMPLE_RATE / len(piece)))
        heard = np.array(heard)
        # the object's state per segment, through the simulator's own mapping
        reference = np.array([np.log2(np.mean(f)) for f in np.array_split(pitch_track(trajectory, size), segments)])
        aligned_errors.append(np.abs(heard - reference).mean())
        offset_errors.append(np.mean([np.abs(heard - np.roll(reference, shift)).mean() for shift in (1, 2, 3)]))
    assert np.mean(aligned_errors) < 0.1  # octaves
    assert np.mean(offset_errors) > 2 * np.mean(aligned_errors)


def test_the_embedded_motion_audio_is_louder_when_the_object_moves_faster():
    """The sound's level per segment follows the object's speed: a clip that accelerates gets
    louder, one that slows down quieter, and a fast clip is louder than a slow one."""
    from ultrassl.synth.motion import class_trajectory, loudness_track, trajectory_audio

    fps, n_frames, size = 25.0, 32, (64, 64)
    trends, levels, speeds = [], [], []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        trajectory = class_trajectory("MoveLeft", rng, n_frames, size)
        audio = trajectory_audio(trajectory, size, fps, rng)
        rms = np.array([np.sqrt(np.mean(piece**2)) for piece in np.array_split(audio, 4)[1:3]])
        expected = np.array([np.mean(piece) for piece in np.array_split(loudness_track(trajectory, size), 4)[1:3]])
        if abs(expected[1] - expected[0]) > 0.01:  # a steady speed leaves the level to noise
            trends.append((np.sign(rms[1] - rms[0]), np.sign(expected[1] - expected[0])))
        levels.append(rms.mean())
        speeds.append(np.hypot(np.diff(trajectory.x), np.diff(trajectory.y)).mean())
    assert len(trends) >= 6 and all(heard == drawn for heard, drawn in trends)
    assert np.corrcoef(levels, speeds)[0, 1] > 0.9


def test_the_embedded_motion_audio_carries_its_kind_of_scene():
    """Under the object's tone, each clip's sound has the room tone of its kind of scene: the same
    motion filmed in each of the four kinds of scene sounds loudest, all clip long, in its own
    scene's band, so another clip's sound can be told apart by its scene."""
    from ultrassl.synth.motion import AUDIO_SAMPLE_RATE, MOTION_CLASSES, SCENES, class_trajectory, clip_audio

    fps, n_frames, size = 25.0, 32, (64, 64)
    window = 512
    frequency = np.fft.rfftfreq(window, 1 / AUDIO_SAMPLE_RATE)
    in_band = [np.abs(np.log2(np.maximum(frequency, 1) / centre)) < 0.2 for _, _, centre in SCENES]
    for k, name in enumerate(MOTION_CLASSES):
        trajectory = class_trajectory(name, np.random.default_rng(k), n_frames, size)
        steady = []  # (scene filmed in, band): the power each band keeps over 90 % of the clip
        for scene in range(len(SCENES)):
            audio = clip_audio(trajectory, scene, size, fps, np.random.default_rng(1000 + k))
            assert np.abs(audio).max() <= 0.6
            frames = np.lib.stride_tricks.sliding_window_view(audio, window)[:: window // 2] * np.hanning(window)
            power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
            steady.append([np.quantile(power[:, band].mean(axis=1), 0.1) for band in in_band])
        steady = np.array(steady)
        assert (steady.argmax(axis=0) == np.arange(len(SCENES))).all(), name
        assert (np.diag(steady) > 10 * np.median(steady, axis=0)).all(), name
