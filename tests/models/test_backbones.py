"""The backbone registry: every backbone builds, runs and reports its true feature width."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ultrassl.models.backbones import (
    Backbone,
    FrameEncoder,
    backbone_info,
    create_backbone,
    list_backbones,
)

# Small inputs that still survive every backbone's downsampling (ResNets: /32, SonoNet: /16).
CLIP = (2, 1, 4, 32, 32)
FRAME = (2, 1, 32, 32)


def _input(kind: str, channels: int = 1) -> torch.Tensor:
    shape = CLIP if kind == "clip" else FRAME
    return torch.rand(shape[0], channels, *shape[2:], generator=torch.Generator().manual_seed(0))


def test_registry_lists_the_documented_backbones():
    assert list_backbones() == ["r3d_18", "r3d_50", "sononet16", "sononet32", "sononet64", "tiny2d", "tiny3d"]


@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_runs_and_num_features_matches(name):
    info = backbone_info(name)
    backbone = create_backbone(name, in_channels=2).eval()
    assert isinstance(backbone, Backbone)
    assert backbone.input_kind == info.input_kind
    x = _input(info.input_kind, channels=2)
    with torch.no_grad():
        feature_map = backbone.forward_feature_map(x)
        features = backbone.forward_features(x)
    assert features.shape == (2, backbone.num_features)
    assert feature_map.shape[:2] == (2, backbone.num_features)
    assert feature_map.ndim == x.ndim
    # Pooled features are the global mean of the map the saliency/CAM code will use.
    torch.testing.assert_close(features, feature_map.flatten(2).mean(-1))


@pytest.mark.parametrize("name", ["r3d_18", "r3d_50"])
def test_resnet_features_equal_monai_pooled_output(name):
    backbone = create_backbone(name, in_channels=1).eval()
    x = _input("clip")
    with torch.no_grad():
        torch.testing.assert_close(backbone.forward_features(x), backbone.net(x))


def test_resnet_uses_the_video_stem():
    conv1 = create_backbone("r3d_18").net.conv1
    assert conv1.kernel_size == (3, 7, 7) and conv1.stride == (1, 2, 2)
    assert conv1.in_channels == backbone_info("r3d_18").default_in_channels == 3


def test_sononet_widths_follow_the_paper():
    for base, features in ((16, 64), (32, 128), (64, 256)):
        net = create_backbone(f"sononet{base}")
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        assert [c.out_channels for c in convs[:-1]] == [base] * 2 + [2 * base] * 2 + [4 * base] * 3 + [8 * base] * 6
        assert convs[-1].kernel_size == (1, 1) and net.num_features == features
        assert convs[0].in_channels == 1  # grayscale by default
        assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 4


def test_tiny3d_is_tiny_and_takes_widths():
    assert sum(p.numel() for p in create_backbone("tiny3d").parameters()) < 100_000
    assert create_backbone("tiny3d", channels=(4, 8, 12)).num_features == 12


def test_tiny3d_frame_differences_feed_the_change_between_frames():
    net = create_backbone("tiny3d", in_channels=3, channels=(4, 8, 8), frame_differences=True).eval()
    first = next(m for m in net.modules() if isinstance(m, nn.Conv3d))
    assert first.in_channels == 6
    clip = torch.rand(2, 3, 5, 16, 16)
    seen = net.stem_input(clip)
    assert seen.shape == (2, 6, 5, 16, 16)
    torch.testing.assert_close(seen[:, :3], clip)
    torch.testing.assert_close(seen[:, 3:, 0], torch.zeros(2, 3, 16, 16))
    torch.testing.assert_close(seen[:, 3:, 3], clip[:, :, 3] - clip[:, :, 2])
    # a still clip carries no difference; the same frames in motion do
    still = clip[:, :, :1].expand(-1, -1, 5, -1, -1)
    assert net.stem_input(still)[:, 3:].abs().max() == 0
    with torch.no_grad():
        assert net(clip).shape == (2, 8)
    assert create_backbone("tiny3d", in_channels=3).stem_input(clip) is clip  # off by default


def test_tiny2d_is_a_cut_sononet_whose_map_is_an_eighth_of_the_frame():
    net = create_backbone("tiny2d").eval()
    assert net.input_kind == "frame" and net.num_features == 64 and net.downsampling == 8
    assert sum(p.numel() for p in net.parameters()) < 100_000
    with torch.no_grad():
        assert net.forward_feature_map(torch.zeros(2, 1, 64, 80)).shape == (2, 64, 8, 10)
    # SonoNet itself is unchanged by the new options: the paper's stages and adaptation layer
    assert create_backbone("sononet16").num_features == 64
    assert create_backbone("sononet16").downsampling == 16


def test_sononet_stage_options_must_pair_up():
    from ultrassl.models.backbones import SonoNet

    with pytest.raises(ValueError, match="one entry per stage"):
        SonoNet(stage_depths=(2, 2), stage_widths=(1,))


def test_frame_encoder_equals_the_frame_backbone_frame_by_frame():
    frame_net = create_backbone("sononet16").eval()
    encoder = FrameEncoder(frame_net).eval()
    clip = _input("clip")
    with torch.no_grad():
        per_frame = encoder.forward_frames(clip)
        maps = encoder.forward_feature_map(clip)
        for t in range(clip.shape[2]):
            torch.testing.assert_close(per_frame[:, t], frame_net.forward_features(clip[:, :, t]))
            torch.testing.assert_close(maps[:, :, t], frame_net.forward_feature_map(clip[:, :, t]))
        torch.testing.assert_close(encoder.forward_features(clip), per_frame.mean(1))
        # Single frames pass straight through.
        torch.testing.assert_close(encoder.forward_features(clip[:, :, 0]), per_frame[:, 0])
    assert per_frame.shape == (2, 4, encoder.num_features)
    assert encoder.input_kind == "clip"


def test_frame_encoder_refuses_clip_backbones():
    with pytest.raises(ValueError, match="frame backbones"):
        FrameEncoder(create_backbone("tiny3d"))


def test_wrong_input_rank_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\), got shape \(2, 1, 32, 32\)"):
        create_backbone("tiny3d").forward_features(torch.zeros(FRAME))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        create_backbone("sononet16").forward_features(torch.zeros(CLIP))


def test_unknown_name_lists_known_backbones():
    with pytest.raises(ValueError, match="known: r3d_18"):
        create_backbone("resnet1000")


def test_default_channels_come_from_the_registry():
    assert create_backbone("sononet16").stages[0][0].conv.in_channels == 1
    assert create_backbone("r3d_18", in_channels=1).net.conv1.in_channels == 1
