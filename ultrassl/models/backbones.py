"""The backbone registry: every encoder an objective can train, behind one interface.

Every backbone is a :class:`Backbone`:

* ``input_kind`` is ``"clip"`` (input ``(B, C, T, H, W)``) or ``"frame"`` (input ``(B, C, H, W)``);
* :meth:`Backbone.forward_feature_map` returns the last spatial(-temporal) feature map,
  ``(B, F, t, h, w)`` for clips and ``(B, F, h, w)`` for frames (class-activation maps and
  saliency decoders start from it);
* :meth:`Backbone.forward_features` returns the globally average-pooled features ``(B, F)``,
  ``F = num_features``.

Frame backbones run on clips through :class:`FrameEncoder`, which applies them to every frame.

All backbones are registered explicitly in :data:`_REGISTRY` at the bottom of this module; no
other module registers anything on import. Build one with :func:`create_backbone`.
"""

from __future__ import annotations

import inspect

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from monai.networks.blocks import Convolution
from monai.networks.nets import resnet18, resnet50
from torch import nn

InputKind = Literal["clip", "frame"]

_INPUT_RANK = {"clip": 5, "frame": 4}
_INPUT_SHAPE = {"clip": "(B, C, T, H, W)", "frame": "(B, C, H, W)"}


class Backbone(nn.Module):
    """An encoder with a feature map and pooled features.

    Subclasses set ``num_features`` and ``input_kind`` and implement :meth:`forward_feature_map`.
    """

    num_features: int
    input_kind: InputKind

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map: ``(B, F, t, h, w)`` for clips, ``(B, F, h, w)`` for frames."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled features ``(B, num_features)``."""
        return self.forward_feature_map(x).flatten(2).mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error unless ``x`` has the rank this backbone's input kind needs."""
        expected = _INPUT_RANK[self.input_kind]
        if x.ndim != expected:
            raise ValueError(
                f"{type(self).__name__} is a {self.input_kind} backbone and expects "
                f"{_INPUT_SHAPE[self.input_kind]}, got shape {tuple(x.shape)}"
            )


class ResNet3D(Backbone):
    """MONAI's 3D ResNet with a video stem and no classifier.

    The stem convolves 3x7x7 with stride (1, 2, 2): the MONAI default (7x7x7, stride 1) keeps
    full temporal and spatial resolution in the first layer and is ~10x slower on video.

    Args:
        depth: 18 (basic blocks, F = 512) or 50 (bottlenecks, F = 2048).
        in_channels: input channels C.
        **monai_kwargs: further arguments of :class:`monai.networks.nets.ResNet`
            (``widen_factor``, ``norm``, ``conv1_t_size``, ...).
    """

    input_kind: InputKind = "clip"

    def __init__(self, depth: int, in_channels: int = 3, **monai_kwargs: Any):
        super().__init__()
        factories = {18: resnet18, 50: resnet50}
        if depth not in factories:
            raise ValueError(f"ResNet3D depth must be one of {sorted(factories)}, got {depth}")
        options = {"conv1_t_size": (3, 7, 7), "conv1_t_stride": (1, 2, 2), **monai_kwargs}
        self.net = factories[depth](
            spatial_dims=3, n_input_channels=in_channels, feed_forward=False, **options
        )
        last_conv = [m for m in self.net.layer4.modules() if isinstance(m, nn.Conv3d)][-1]
        self.num_features = last_conv.out_channels

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, F, ~T / 16, ~H / 32, ~W / 32)`` (each size at least 1)."""
        self.check_input(x)
        net = self.net
        # MONAI's forward pools at the end; the map before pooling is needed too.
        x = net.act(net.bn1(net.conv1(x)))
        if not net.no_max_pool:
            x = net.maxpool(x)
        return net.layer4(net.layer3(net.layer2(net.layer1(x))))


class Tiny3D(Backbone):
    """A tiny 3D CNN (about 18k parameters) for tests and CPU demos.

    Three conv-BN-ReLU layers; the first two halve only the spatial size, the last halves
    time as well, so a 4-frame 32x32 clip ends as a (F, 2, 4, 4) map.

    With ``frame_differences``, the first layer also sees each frame minus the one before it (C
    more channels; zeros for the first frame), the "RGB difference" input of temporal segment
    networks (Wang et al., ECCV 2016) fused into one stream. A network this small does not find
    motion in raw frames by itself: supervised on the embedded motion clips (336 training clips,
    1,000 steps, no augmentation) it memorised the clips (training accuracy 0.61) and stayed at
    chance on held-out ones (0.15 for 8 classes); with the differences it reached 0.74
    (``benchmarks/motion_learnability.py``).

    Args:
        in_channels: input channels C.
        channels: output channels of the three layers; ``F = channels[-1]``.
        frame_differences: feed frame-to-frame differences beside the frames.
    """

    input_kind: InputKind = "clip"

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (8, 16, 32), frame_differences: bool = False):
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"Tiny3D takes three channel widths, got {list(channels)}")
        self.frame_differences = bool(frame_differences)
        strides = [(1, 2, 2), (1, 2, 2), (2, 2, 2)]
        layers = []
        first = 2 * in_channels if frame_differences else in_channels
        for c_in, c_out, stride in zip([first, *channels[:-1]], channels, strides):
            layers.append(
                Convolution(
                    spatial_dims=3, in_channels=c_in, out_channels=c_out, strides=stride,
                    kernel_size=3, act="RELU", norm="BATCH", adn_ordering="NA", bias=False,
                )
            )
        self.layers = nn.Sequential(*layers)
        self.num_features = int(channels[-1])
        he_init(self)

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, F, ceil(T / 2), H / 8, W / 8)``."""
        self.check_input(x)
        return self.layers(self.stem_input(x))

    def stem_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the first layer sees: ``x``, or ``(B, 2C, T, H, W)`` with ``frame_differences``
        (channels C.. 2C-1 at time t: frame t minus frame t - 1; zeros at t = 0)."""
        if not self.frame_differences:
            return x
        differences = torch.zeros_like(x)
        differences[:, :, 1:] = x[:, :, 1:] - x[:, :, :-1]
        return torch.cat([x, differences], dim=1)


class SonoNet(Backbone):
    """SonoNet frame encoder (Baumgartner et al., IEEE TMI 2017), without its classifier.

    Written here because no maintained library ships SonoNet. VGG-like: five stages of 3x3
    conv-BN-ReLU (2, 2, 3, 3, 3 convolutions; widths base x 1, 2, 4, 8, 8), 2x2 max pooling
    after the first four stages, then the adaptation layer (1x1 conv to half the width, BN,
    ReLU). The paper's last 1x1 conv to the class count belongs to a downstream head; the
    adaptation output is the feature map, so ``F = 4 x base`` (64, 128, 256 for
    SonoNet-16/32/64) and a linear head on its pooled features gives class-activation maps.

    Args:
        base_width: width of the first stage: 16, 32 or 64 in the paper.
        in_channels: input channels C (1: grayscale ultrasound, as in the paper).
        stage_depths, stage_widths: convolutions per stage and each stage's width in units of
            ``base_width`` (the paper's by default); a max pooling precedes every stage but the
            first.
        adaptation: end with the adaptation layer (the paper's); without it F is the last
            stage's width.
    """

    input_kind: InputKind = "frame"
    STAGE_DEPTHS = (2, 2, 3, 3, 3)
    STAGE_WIDTHS = (1, 2, 4, 8, 8)

    def __init__(
        self,
        base_width: int = 16,
        in_channels: int = 1,
        stage_depths: Sequence[int] = STAGE_DEPTHS,
        stage_widths: Sequence[int] = STAGE_WIDTHS,
        adaptation: bool = True,
    ):
        super().__init__()
        if len(stage_depths) != len(stage_widths) or not stage_depths:
            raise ValueError(f"stage_depths and stage_widths need one entry per stage, got {stage_depths}, {stage_widths}")
        stages: list[nn.Module] = []
        c_in = in_channels
        for index, (depth, factor) in enumerate(zip(stage_depths, stage_widths)):
            width = base_width * factor
            stage: list[nn.Module] = [] if index == 0 else [nn.MaxPool2d(2)]
            for _ in range(depth):
                stage.append(_conv_bn_relu(c_in, width, kernel_size=3))
                c_in = width
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.adaptation = _conv_bn_relu(c_in, c_in // 2, kernel_size=1) if adaptation else nn.Identity()
        self.num_features = c_in // 2 if adaptation else c_in
        self.downsampling = 2 ** (len(stage_depths) - 1)
        he_init(self)

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, F, H / s, W / s)``, s = 16 for SonoNet (``downsampling``)."""
        self.check_input(x)
        return self.adaptation(self.stages(x))


def he_init(module: nn.Module) -> None:
    """He (fan-out) initialisation of every convolution of ``module``, as the reference ResNets and
    MONAI's ResNets do. PyTorch's default convolution init shrinks the signal by about
    sqrt(3) per layer; with BatchNorm at its initial statistics (a frozen, randomly
    initialised encoder) eight such layers leave features of order 1e-4, below the variance
    floor of any standardisation, and a random-init baseline then predicts one class."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def _conv_bn_relu(c_in: int, c_out: int, kernel_size: int) -> nn.Module:
    # No bias: the BatchNorm that follows has its own.
    return Convolution(
        spatial_dims=2, in_channels=c_in, out_channels=c_out, kernel_size=kernel_size,
        act="RELU", norm="BATCH", adn_ordering="NA", bias=False,
    )


class FrameEncoder(Backbone):
    """Runs a frame backbone on every frame of a clip; the frames share all weights.

    The frames of a batch are encoded as one batch of B x T images (so BatchNorm statistics
    are taken over all of them). Frames ``(B, C, H, W)`` pass straight to the frame backbone.

    Args:
        frame_backbone: a backbone with ``input_kind == "frame"``.
    """

    input_kind: InputKind = "clip"

    def __init__(self, frame_backbone: Backbone):
        super().__init__()
        if frame_backbone.input_kind != "frame":
            raise ValueError(
                f"FrameEncoder wraps frame backbones, got a {frame_backbone.input_kind} backbone "
                f"({type(frame_backbone).__name__})"
            )
        self.frame_backbone = frame_backbone
        self.num_features = frame_backbone.num_features

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame pooled features: ``(B, C, T, H, W)`` -> ``(B, T, F)``."""
        self.check_input(x)
        b, t = x.shape[0], x.shape[2]
        return self.frame_backbone.forward_features(_frames_as_batch(x)).reshape(b, t, -1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Clips ``(B, C, T, H, W)``: frame features averaged over time, ``(B, F)``.
        Frames ``(B, C, H, W)``: the frame backbone's features ``(B, F)``."""
        if x.ndim == 4:
            return self.frame_backbone.forward_features(x)
        return self.forward_frames(x).mean(dim=1)

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Clips: ``(B, F, T, h, w)``, laid out like a 3D backbone's map. Frames: ``(B, F, h, w)``."""
        if x.ndim == 4:
            return self.frame_backbone.forward_feature_map(x)
        self.check_input(x)
        b, t = x.shape[0], x.shape[2]
        maps = self.frame_backbone.forward_feature_map(_frames_as_batch(x))  # (B*T, F, h, w)
        return maps.reshape(b, t, *maps.shape[1:]).transpose(1, 2)


def _frames_as_batch(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> ``(B * T, C, H, W)``, frames of one clip consecutive."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


@dataclass(frozen=True)
class BackboneInfo:
    """What the registry knows about a backbone before building it.

    Attributes:
        name: registry name.
        builder: ``builder(in_channels=..., **kwargs) -> Backbone``.
        input_kind: ``"clip"`` or ``"frame"``.
        default_in_channels: channels the backbone is usually given (1: grayscale ultrasound).
        description: one line for listings and docs.
    """

    name: str
    builder: Callable[..., Backbone]
    input_kind: InputKind
    default_in_channels: int
    description: str


def _builder(cls: type[Backbone], **fixed: Any) -> Callable[..., Backbone]:
    def build(in_channels: int, **kwargs: Any) -> Backbone:
        return cls(in_channels=in_channels, **fixed, **kwargs)

    # what a config's backbone_kwargs may set, for a one-line error naming them
    build.options = tuple(p for p in inspect.signature(cls).parameters if p not in ("self", "in_channels", *fixed))
    return build


_REGISTRY: dict[str, BackboneInfo] = {
    info.name: info
    for info in (
        BackboneInfo("r3d_18", _builder(ResNet3D, depth=18), "clip", 3,
                     "3D ResNet-18 (MONAI) with a 3x7x7 video stem; F = 512"),
        BackboneInfo("r3d_50", _builder(ResNet3D, depth=50), "clip", 3,
                     "3D ResNet-50 (MONAI) with a 3x7x7 video stem; F = 2048"),
        BackboneInfo("sononet16", _builder(SonoNet, base_width=16), "frame", 1,
                     "SonoNet-16 frame encoder (Baumgartner et al. 2017); F = 64"),
        BackboneInfo("sononet32", _builder(SonoNet, base_width=32), "frame", 1,
                     "SonoNet-32 frame encoder; F = 128"),
        BackboneInfo("sononet64", _builder(SonoNet, base_width=64), "frame", 1,
                     "SonoNet-64 frame encoder; F = 256"),
        BackboneInfo("tiny2d", _builder(SonoNet, base_width=8, stage_depths=(2, 2, 2, 2), stage_widths=(1, 2, 4, 8),
                                        adaptation=False), "frame", 1,
                     "SonoNet-style frame encoder cut to four stages of two convolutions (widths 8 to 64, no "
                     "adaptation layer) for CPU runs; F = 64"),
        BackboneInfo("tiny3d", _builder(Tiny3D), "clip", 1,
                     "tiny 3D CNN (~18k parameters) for tests and CPU demos; F = 32"),
    )
}


def list_backbones() -> list[str]:
    """Names of all registered backbones, sorted."""
    return sorted(_REGISTRY)


def backbone_info(name: str) -> BackboneInfo:
    """Registry entry of ``name``; the error lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(list_backbones())}") from None


def create_backbone(name: str, in_channels: int | None = None, **kwargs: Any) -> Backbone:
    """Build the registered backbone ``name``.

    Args:
        name: one of :func:`list_backbones`.
        in_channels: input channels; None takes the backbone's ``default_in_channels``.
        **kwargs: backbone-specific options (e.g. ``channels`` for ``tiny3d``,
            ``widen_factor`` for the ResNets).
    """
    info = backbone_info(name)
    options = getattr(info.builder, "options", None)
    unknown = sorted(set(kwargs) - set(options)) if options is not None else []
    if unknown:
        raise ValueError(f"backbone_kwargs={kwargs!r}: backbone {name!r} takes no option {', '.join(map(repr, unknown))}; "
                         f"its options: {', '.join(options) or 'none'}")
    channels = info.default_in_channels if in_channels is None else in_channels
    return info.builder(in_channels=channels, **kwargs)
