"""How an encoder organises a data set: frames embedded with a checkpoint, projected to 2D.

Any checkpoint the viewer offers works. A downstream model (plane detection, saliency) brings
its encoder and the pipeline it was trained with; a pretraining checkpoint's encoder is put in
a plane-detection model with an untrained head (:class:`~ultrassl.models.encoders.PretrainedEncoder`,
the path ``ultrassl evaluate`` takes) and a frame pipeline at the input size it was pretrained
on, so that both read loops the same way (:meth:`inference_transform`: sector mask, resize,
normalisation). A frame's embedding is the encoder's feature map of the frame (with its
neighbours for a clip backbone, as the tasks predict it) averaged over space.

The projection is PCA (torch's SVD of the centred features), or UMAP where ``umap-learn`` is
installed. Plain functions, kept apart from the Streamlit page so that they can be tested
without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from ultrassl.downstream.cine import window_indices
from ultrassl.errors import CheckpointError, ClipReadError

#: frames embedded per clip, spread over the loop
DEFAULT_FRAMES_PER_CLIP = 8
PLANE_PIPELINE = "ultrassl.pipelines.plane_detection.PlaneDetectionPipeline"


@dataclass
class EmbeddingModel:
    """A model whose ``frame_feature_map`` embeds frames, its loop transform and its clip length."""

    model: Any
    transform: Callable[[dict], dict]
    clip_frames: int
    source: str  # "task" or "pretraining"


def embedding_model(checkpoint: str | os.PathLike) -> EmbeddingModel:
    """The encoder of ``checkpoint`` (a downstream model or a pretraining checkpoint), ready
    to embed frames (see the module docstring).

    Raises:
        CheckpointError: the file is neither.
    """
    from ultrassl.downstream.base import load_task_model
    from ultrassl.models.checkpoint import read_checkpoint

    checkpoint_data = read_checkpoint(checkpoint)
    if checkpoint_data.get("task_class"):
        model = load_task_model(checkpoint)
        source = "task"
    else:
        from ultrassl.data.planes import PLANE_CLASSES
        from ultrassl.downstream.plane_detection import PlaneDetection
        from ultrassl.models.encoders import PretrainedEncoder

        encoder = PretrainedEncoder(checkpoint)
        info = encoder.describe()
        size = _pretraining_size(checkpoint_data) or [112, 112]
        pipeline = {"class_path": PLANE_PIPELINE,
                    "init_args": {"modality": "ultrasound", "in_channels": info.spec.in_channels, "size": list(size),
                                  "clip_frames": 1 if info.frame_wise else 4}}
        model = PlaneDetection(encoder=encoder, pipeline=pipeline, class_names=list(PLANE_CLASSES), class_weights=None)
        source = "pretraining"
    if model.pipeline is None:
        raise CheckpointError("the checkpoint records no data pipeline", str(checkpoint))
    clip_frames = 1 if model.frame_wise else int(getattr(model.pipeline, "clip_frames", 1))
    return EmbeddingModel(model.eval(), model.pipeline.inference_transform(), clip_frames, source)


def _pretraining_size(checkpoint: dict[str, Any]) -> list[int] | None:
    """The input size a pretraining run's pipeline used, from the config in its provenance."""
    try:
        config = yaml.safe_load((checkpoint.get("provenance") or {}).get("config") or "")
        size = config["data"]["init_args"]["pipeline"]["init_args"]["size"]
    except (yaml.YAMLError, KeyError, TypeError):
        return None
    return [int(size), int(size)] if isinstance(size, int) else [int(s) for s in size]


@torch.no_grad()
def embed_loop(model: EmbeddingModel, path: str, frames_per_clip: int = DEFAULT_FRAMES_PER_CLIP
               ) -> tuple[np.ndarray, list[int]]:
    """Embeddings ``(K, F)`` of ``K`` frames spread over the clip at ``path``, and their indices.

    Raises:
        ClipReadError: (a subclass) the clip cannot be read.
    """
    from ultrassl.downstream.inference import load_loop

    loop = load_loop(model.transform, path)  # (C, N, h, w) as the model sees it
    n = loop.shape[1]
    chosen = sorted({int(t) for t in np.linspace(0, n - 1, min(frames_per_clip, n)).round()})
    windows = window_indices(n, model.clip_frames)[chosen]  # (K, T)
    clips = loop[:, windows].permute(1, 0, 2, 3, 4)  # (K, C, T, h, w)
    features = model.model.frame_feature_map(clips).mean(dim=(2, 3))
    return features.float().numpy(), chosen


@dataclass
class Embedding:
    """Frames of a data set in 2D.

    Attributes:
        table: one row per frame: ``clip`` (name), ``path``, ``frame``, ``x``, ``y`` and the
            colour columns found (``plane``, ``subject``, ``split``, ``label``).
        method: ``"PCA"`` or ``"UMAP"``.
        explained: PCA's share of variance of the two axes (empty for UMAP).
        left_out: ``{"clip", "error"}`` of clips that could not be read.
    """

    table: pd.DataFrame
    method: str
    explained: list[float]
    left_out: list[dict[str, str]]


def project(features: np.ndarray, method: str = "PCA", seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """``(N, 2)`` coordinates of ``features`` ``(N, F)``, and PCA's explained variance ratios."""
    x = torch.as_tensor(features, dtype=torch.float64)
    if method == "UMAP":
        import umap  # optional: pip install umap-learn

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(features), []
    x = x - x.mean(dim=0)
    if x.shape[0] < 2:
        return np.zeros((x.shape[0], 2)), [0.0, 0.0]
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    components = vh[:2].T
    coordinates = x @ components
    if coordinates.shape[1] < 2:
        coordinates = torch.cat([coordinates, torch.zeros(x.shape[0], 2 - coordinates.shape[1], dtype=x.dtype)], 1)
    variance = s**2
    ratios = (variance[:2] / variance.sum().clamp_min(1e-12)).tolist()
    return coordinates.numpy(), ratios + [0.0] * (2 - len(ratios))


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def embed_clips(model: EmbeddingModel, clips: pd.DataFrame, frames_per_clip: int = DEFAULT_FRAMES_PER_CLIP,
                method: str = "PCA", plane_names: Callable[[pd.Series, int], Sequence[str] | None] | None = None,
                progress: Callable[[int, int], None] | None = None) -> Embedding:
    """Embed ``frames_per_clip`` frames of every clip of ``clips`` (rows with ``clip`` and
    ``path``, and any of ``subject``, ``split``, ``label``) and project them to 2D.

    ``plane_names(row, n_frames)`` gives the plane of every frame of a clip when it has frame
    labels; ``progress(done, total)`` is called after each clip.
    """
    rows, features, left_out = [], [], []
    total = len(clips)
    for done, (_, clip) in enumerate(clips.iterrows(), start=1):
        try:
            embedded, chosen = embed_loop(model, clip["path"], frames_per_clip)
        except ClipReadError as exc:
            left_out.append({"clip": str(clip["clip"]), "error": f"{type(exc).__name__}: {exc.cause}"})
        else:
            planes = plane_names(clip, int(clip.get("n_frames") or 0)) if plane_names is not None else None
            for frame, vector in zip(chosen, embedded):
                row = {"clip": clip["clip"], "path": clip["path"], "frame": frame}
                for column in ("subject", "split", "label"):
                    if column in clip.index and str(clip[column]).strip() not in ("", "nan", "<NA>"):
                        row[column] = str(clip[column])
                if planes is not None and frame < len(planes):
                    row["plane"] = planes[frame]
                rows.append(row)
                features.append(vector)
        if progress is not None:
            progress(done, total)
    if not rows:
        raise ValueError("no clip could be embedded" + (f": {left_out[0]['clip']}: {left_out[0]['error']}"
                                                        if left_out else ""))
    coordinates, explained = project(np.stack(features), method)
    table = pd.DataFrame(rows)
    table["x"], table["y"] = coordinates[:, 0], coordinates[:, 1]
    return Embedding(table, method, explained, left_out)
