"""What a self-supervised objective is fed: one training sample of a clip, drawn by the
pipeline that objective trains with.

The sample is made by the pipeline object of the objective's shipped config
(``configs/pretrain/<objective>.yaml``, ``data.init_args.pipeline``), through its training
chain, exactly as :class:`~ultrassl.data.datamodule.ManifestDataModule` makes one: the same
classes, the same recorded parameters. Nothing here re-implements a transform, so the
picture cannot drift from the code. What each view's parameters mean for the objective (the
order class to predict, the affine to regress, CATE's augmentation encodings) is read from
those recorded parameters with the functions the objectives use.

Plain functions, kept apart from the Streamlit page so that they can be tested without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from torch.utils.data import default_collate

from ultrassl.data.datasets import ManifestDataset
from ultrassl.models.checkpoint import import_class

#: the shipped pretraining configs
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "pretrain"


def objective_configs(folder: Path = CONFIG_DIR) -> dict[str, dict[str, Any]]:
    """``{config name: config}`` of the shipped pretraining configs (``cvrl``, ``cvrl_natural`` ...)."""
    configs = {}
    for path in sorted(folder.glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        if isinstance(config, dict) and "pipeline" in ((config.get("data") or {}).get("init_args") or {}):
            configs[path.stem] = config
    return configs


@dataclass
class PretextView:
    """One clip of a sample as the encoder receives it.

    Attributes:
        key: the sample's key (``order_clip``, ``view1``, ``anchor`` ...).
        frames: uint8 ``(T, H, W)`` or ``(T, H, W, 3)``, the clip's frames for display (the
            input rescaled to 0-255 per clip, since pipelines normalise intensities).
        frame_indices: the file's frame of each clip frame, when the pipeline recorded them.
        params: the parameters the pipeline's transforms recorded for this clip (plain values).
        notes: what the parameters mean for the objective, one line each.
    """

    key: str
    frames: np.ndarray
    frame_indices: list[int] | None
    params: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def pretext_sample(config: Mapping[str, Any], row: Mapping[str, Any], seed: int = 0) -> dict[str, Any]:
    """The training sample of the clip ``row`` (a manifest row: ``path`` and its header facts)
    that the config's pipeline draws with ``seed``.

    Raises:
        ClipReadError: (a subclass) the clip cannot be read or is too short for the pipeline.
    """
    spec = config["data"]["init_args"]["pipeline"]
    pipeline = import_class(spec["class_path"])(**dict(spec.get("init_args") or {}))
    transform = pipeline.train_transform()
    transform.set_random_state(seed=int(seed))
    sample = ManifestDataset(pd.DataFrame([dict(row)]), transform, label_column=None)[0]
    return sample[0] if isinstance(sample, list) else sample


def pretext_views(sample: Mapping[str, Any], config: Mapping[str, Any]) -> list[PretextView]:
    """The clips of ``sample`` (every ``(C, T, H, W)`` tensor, and each segment of a stacked
    ``(S, C, T, H, W)`` one), with their recorded parameters and what those mean for the
    config's objective."""
    views = []
    for key, value in sample.items():
        if not isinstance(value, torch.Tensor):
            continue
        if value.ndim == 4 and value.shape[0] in (1, 3):
            views.append(_view(sample, key, key, value))
        elif value.ndim == 5 and value.shape[1] in (1, 3):  # stacked segments (audio-visual: seg0, seg1 ...)
            views += [_view(sample, f"{key} {i}", f"seg{i}", segment) for i, segment in enumerate(value)]
    _add_cate_encodings(views, sample, config)
    return views


def _view(sample: Mapping[str, Any], name: str, key: str, clip: torch.Tensor) -> PretextView:
    """The view of ``clip``, whose records are under ``key`` in the sample."""
    params = _plain(sample.get(f"{key}_params") or {})
    indices = sample.get(f"{key}_frame_indices")
    if indices is None:
        indices = sample.get("clip_frame_indices")  # one draw of frames shared by every view
    if indices is not None:
        indices = [int(i) for i in indices]
        order = (params.get("permutation") or {}).get("permutation")
        if order and len(order) == len(indices):  # shown frame i is sampled frame order[i]
            indices = [indices[int(i)] for i in order]
    return PretextView(name, display_frames(clip), indices, params, _notes(params))


def display_frames(clip: torch.Tensor) -> np.ndarray:
    """uint8 frames ``(T, H, W)`` (grey) or ``(T, H, W, 3)`` of a clip ``(C, T, H, W)``, its
    values stretched from their minimum to their maximum."""
    clip = clip.detach().float()
    low, high = float(clip.min()), float(clip.max())
    scaled = ((clip - low) / (high - low if high > low else 1.0) * 255).round().clamp(0, 255).to(torch.uint8)
    frames = scaled.permute(1, 2, 3, 0).numpy()  # (T, H, W, C)
    return frames[..., 0] if frames.shape[-1] == 1 else frames


def _notes(params: Mapping[str, Any]) -> list[str]:
    notes = []
    permutation = params.get("permutation")
    if isinstance(permutation, Mapping) and "index" in permutation:
        from ultrassl.transforms.pretext import permutation_classes

        n = len(permutation.get("permutation") or [])
        notes.append(f"frames shown in the order {permutation.get('permutation')}: order class "
                     f"{permutation['index']} of {len(permutation_classes(n))} to predict (an order and its "
                     "reverse are one class)")
    affine = params.get("affine")
    if isinstance(affine, Mapping):
        shown = {k: v for k, v in affine.items() if k not in ("applied", "matrix")}
        notes.append("affine to regress: " + ", ".join(f"{k} {_short(v)}" for k, v in shown.items()))
    temporal = params.get("temporal")
    if isinstance(temporal, Mapping) and "stride" in temporal:
        notes.append(f"frames {_short(temporal.get('stride'))} apart"
                     + (f", from {temporal['start_time_s']:.2f} s" if isinstance(temporal.get("start_time_s"), float)
                        else ""))
    return notes


def _add_cate_encodings(views: list[PretextView], sample: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """CATE's augmentation encodings of the first view relative to the second, as the
    objective builds them (:func:`ultrassl.models.cate_tokens.augmentation_tokens`)."""
    model = config.get("model") or {}
    if not str(model.get("class_path", "")).endswith(".CATE"):
        return
    from ultrassl.models.cate_tokens import augmentation_tokens

    args = model.get("init_args") or {}
    kinds = list(args.get("tokens") or ["time", "crop", "flip"])
    first, second = list(args.get("view_keys") or ["view1", "view2"])[:2]
    batch = default_collate([{k: v for k, v in sample.items() if not isinstance(v, str)}])
    tokens = augmentation_tokens(batch, first, second, kinds, float(args.get("time_scale_s", 1.0)),
                                 float(args.get("default_fps", 30.0)))
    for view in views:
        if view.key == first:
            view.notes.append("CATE encodings relative to " + second + ": " + "; ".join(
                f"{kind} {[round(float(x), 3) for x in value[0]]}" for kind, value in tokens.items()))


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def _plain(value: Any) -> Any:
    """Recorded parameters as JSON-friendly values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _plain(value.tolist())
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
