"""Whole cine loops: per-frame plane predictions, the frames where each plane is best seen,
and per-frame saliency maps.

A cine loop is one clip ``(C, N, H, W)`` holding all N frames, already through the task's
pipeline (:meth:`ultrassl.pipelines.plane_detection.PlaneDetectionPipeline.cine_transform`).
Frame t is classified as in training: a frame backbone sees frame t alone; a clip backbone
sees ``clip_frames`` frames around it, ``t - clip_frames // 2 ...``, indices clamped to the
loop (the first and last frames repeat at the ends).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # the task modules use this one
    from ultrassl.downstream.plane_detection import PlaneDetection


def window_indices(n_frames: int, clip_frames: int) -> torch.Tensor:
    """``(N, clip_frames)`` frame indices of the window around every frame (centre at
    position ``clip_frames // 2``), clamped to ``[0, N)``."""
    offsets = torch.arange(clip_frames) - clip_frames // 2
    return (torch.arange(n_frames)[:, None] + offsets[None, :]).clamp(0, n_frames - 1)


@torch.no_grad()
def predict_cine_loop(
    model: "PlaneDetection",
    loop: torch.Tensor,
    clip_frames: int | None = None,
    batch_size: int = 32,
    with_cams: bool = False,
    progress: Callable[[int, int], None] | None = None,
    frames: Sequence[int] | None = None,
) -> dict[str, torch.Tensor]:
    """Class probabilities for every frame of a cine loop (or for ``frames`` of it).

    Args:
        model: a trained :class:`PlaneDetection` (put in eval mode here, restored after).
        loop: ``(C, N, H, W)`` float, normalised as in training.
        clip_frames: frames per input for a clip backbone (as trained); frame backbones use 1.
        batch_size: frames per forward pass.
        with_cams: also return the class-activation maps of the predicted class.
        progress: called with ``(frames done, frames)`` after every batch.
        frames: predict only these frames (each still sees its window of the whole loop);
            the outputs then have ``len(frames)`` rows, in this order.

    Returns:
        ``{"probabilities": (N, K), "predicted": (N,) int64}`` and, with ``with_cams``,
        ``"cams": (N, H, W)`` (map of each frame's predicted class, input resolution).
    """
    if loop.ndim != 4:
        raise ValueError(f"a cine loop is (C, N, H, W), got shape {tuple(loop.shape)}")
    if model.frame_wise:
        clip_frames = 1
    elif clip_frames is None:
        raise ValueError("a clip backbone needs clip_frames (the clip length it was trained on)")
    was_training = model.training
    model.eval()
    try:
        windows = window_indices(loop.shape[1], int(clip_frames))
        if frames is not None:
            chosen = torch.as_tensor(list(frames), dtype=torch.long)
            if chosen.numel() == 0 or int(chosen.min()) < 0 or int(chosen.max()) >= len(windows):
                raise ValueError(f"frames must be a non-empty list of indices in [0, {len(windows)}), "
                                 f"got {list(frames)}")
            windows = windows[chosen]
        probabilities, cams = [], []
        device = next(model.parameters()).device
        for start in range(0, len(windows), batch_size):
            index = windows[start : start + batch_size]
            clips = loop[:, index].permute(1, 0, 2, 3, 4).to(device)  # (b, C, T, H, W)
            if with_cams:
                logits, maps = model.logits_and_cams(clips)
                predicted = logits.argmax(dim=1)
                cams.append(maps[torch.arange(len(predicted)), predicted].cpu())
            else:
                logits = model(clips)
            probabilities.append(torch.softmax(logits, dim=1).cpu())
            if progress is not None:
                progress(min(start + batch_size, len(windows)), len(windows))
    finally:
        model.train(was_training)
    probabilities = torch.cat(probabilities)
    out = {"probabilities": probabilities, "predicted": probabilities.argmax(dim=1)}
    if with_cams:
        out["cams"] = torch.cat(cams)
    return out


@torch.no_grad()
def predict_saliency_loop(model, loop: torch.Tensor, clip_frames: int, batch_size: int = 32,
                          progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Saliency maps ``(N, H, W)`` (each a distribution over the pixels) for every frame of a
    loop ``(C, N, H, W)``, windows as in :func:`predict_cine_loop` (``progress`` likewise)."""
    was_training = model.training
    model.eval()
    try:
        windows = window_indices(loop.shape[1], 1 if model.frame_wise else int(clip_frames))
        maps = []
        device = next(model.parameters()).device
        for start in range(0, len(windows), batch_size):
            clips = loop[:, windows[start:start + batch_size]].permute(1, 0, 2, 3, 4).to(device)
            maps.append(model.predict_saliency(clips).cpu())
            if progress is not None:
                progress(min(start + batch_size, len(windows)), len(windows))
    finally:
        model.train(was_training)
    return torch.cat(maps)


def best_frames(
    probabilities: torch.Tensor, class_names: Sequence[str], background: int | None = 0
) -> dict[str, dict[str, Any]]:
    """Where each plane is best seen in a loop.

    Args:
        probabilities: ``(N, K)`` per-frame class probabilities.
        class_names: K names.
        background: index of the background class (left out), or None.

    Returns:
        ``{plane: {"frame": t, "probability": p, "predicted_frames": [...]}}`` for every
        plane predicted in at least one frame: ``frame`` is the frame of highest probability
        among the frames predicted as the plane, ``predicted_frames`` all of them (ascending).
    """
    predicted = probabilities.argmax(dim=1)
    out: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(class_names):
        if index == background:
            continue
        frames = torch.nonzero(predicted == index).flatten()
        if frames.numel() == 0:
            continue
        best = frames[probabilities[frames, index].argmax()]
        out[str(name)] = {
            "frame": int(best),
            "probability": float(probabilities[best, index]),
            "predicted_frames": frames.tolist(),
        }
    return out
