"""PNG figures of downstream results, drawn with OpenCV: training curves, confusion matrices,
saliency and class-activation overlays.

Drawn by hand with cv2 (lines, text, colour maps) because the project's environment has no
plotting library; every figure is a plain RGB image written with ``cv2.imwrite``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

#: BGR colours of the series, in order
PALETTE = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140),
           (194, 119, 227), (127, 127, 127)]
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE, _BLACK, _GREY = (255, 255, 255), (0, 0, 0), (200, 200, 200)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.4, color=_BLACK, thickness: int = 1):
    cv2.putText(image, text, origin, _FONT, scale, color, thickness, cv2.LINE_AA)


def _text_width(text: str, scale: float = 0.4) -> int:
    return cv2.getTextSize(text, _FONT, scale, 1)[0][0]


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        high = low + 1.0
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _format(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def line_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    title: str = "",
    xlabel: str = "step",
    ylabel: str = "",
    size: tuple[int, int] = (420, 640),
) -> Path:
    """Line plot of named ``(x, y)`` series (NaNs skipped) with axes, ticks and a legend."""
    height, width = size
    image = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 64, 16, 30, 44
    xs = [float(v) for x, _ in series.values() for v in x]
    ys = [float(v) for _, y in series.values() for v in y if math.isfinite(float(v))]
    _text(image, title, (left, 20), 0.5)
    if xs and ys:
        x_low, x_high = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
        y_low, y_high = min(ys), max(ys)
        pad = 0.05 * (y_high - y_low) if y_high > y_low else 0.5
        y_low, y_high = y_low - pad, y_high + pad

        def to_pixel(x: float, y: float) -> tuple[int, int]:
            px = left + (x - x_low) / (x_high - x_low) * (width - left - right)
            py = height - bottom - (y - y_low) / (y_high - y_low) * (height - top - bottom)
            return int(round(px)), int(round(py))

        for tick in _nice_ticks(y_low, y_high):
            _, py = to_pixel(x_low, tick)
            cv2.line(image, (left, py), (width - right, py), _GREY, 1)
            _text(image, _format(tick), (4, py + 4), 0.35)
        for tick in _nice_ticks(x_low, x_high):
            px, _ = to_pixel(tick, y_low)
            cv2.line(image, (px, height - bottom), (px, height - bottom + 4), _BLACK, 1)
            _text(image, _format(tick), (px - _text_width(_format(tick), 0.35) // 2, height - bottom + 16), 0.35)
        for index, (x, y) in enumerate(series.values()):
            points = [to_pixel(float(a), float(b)) for a, b in zip(x, y) if math.isfinite(float(b))]
            color = PALETTE[index % len(PALETTE)]
            if len(points) > 1:
                cv2.polylines(image, [np.array(points, np.int32)], False, color, 2, cv2.LINE_AA)
            for point in points if len(points) <= 30 else []:
                cv2.circle(image, point, 3, color, -1, cv2.LINE_AA)
    cv2.rectangle(image, (left, top), (width - right, height - bottom), _BLACK, 1)
    _text(image, xlabel, (width // 2 - _text_width(xlabel) // 2, height - 8))
    _text(image, ylabel, (4, top - 8), 0.4)
    for index, name in enumerate(series):
        y = top + 16 + 16 * index
        color = PALETTE[index % len(PALETTE)]
        x0 = width - right - 12 - _text_width(name) - 26
        cv2.line(image, (x0, y - 4), (x0 + 20, y - 4), color, 2)
        _text(image, name, (x0 + 26, y))
    return _write(path, image)


def confusion_matrix_image(
    panels: Mapping[str, Sequence[Sequence[int]]], class_names: Sequence[str], path: str | os.PathLike,
    title: str = "",
) -> Path:
    """Confusion matrices side by side (rows: true class, columns: predicted), each cell
    coloured by its share of the row, with the counts written in."""
    k = len(class_names)
    cell = max(18, min(34, 520 // max(k, 1)))
    label_width = max(_text_width(n, 0.35) for n in class_names) + 8
    panel_width = label_width + k * cell + 16
    height = 44 + label_width + k * cell + 16
    image = np.full((height, panel_width * len(panels), 3), 255, np.uint8)
    _text(image, title, (8, 16), 0.5)
    for p, (name, matrix) in enumerate(panels.items()):
        counts = np.asarray(matrix, dtype=np.float64).reshape(k, k)
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        colours = cv2.applyColorMap((share * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
        x0, y0 = p * panel_width + label_width, 44 + label_width
        _text(image, name, (x0, 34), 0.45)
        for i in range(k):
            _text(image, class_names[i], (p * panel_width + 4, y0 + i * cell + cell // 2 + 4), 0.35)
            # column labels, written vertically
            label = np.full((cell, label_width, 3), 255, np.uint8)
            _text(label, class_names[i], (2, cell // 2 + 4), 0.35)
            image[y0 - label_width: y0, x0 + i * cell: x0 + (i + 1) * cell] = np.rot90(label)[:label_width]
            for j in range(k):
                top_left = (x0 + j * cell, y0 + i * cell)
                cv2.rectangle(image, top_left, (top_left[0] + cell - 1, top_left[1] + cell - 1),
                              tuple(int(c) for c in colours[i, j]), -1)
                if counts[i, j]:
                    text = str(int(counts[i, j]))
                    ink = _BLACK if share[i, j] > 0.6 else _WHITE
                    _text(image, text, (top_left[0] + (cell - _text_width(text, 0.3)) // 2, top_left[1] + cell // 2 + 4),
                          0.3, ink)
    return _write(path, image)


def gray_bgr(frame: np.ndarray) -> np.ndarray:
    """A frame of any range as an 8-bit BGR image, min-max scaled (for overlay grids)."""
    frame = np.asarray(frame, dtype=np.float64)
    low, high = frame.min(), frame.max()
    scaled = ((frame - low) / (high - low) if high > low else np.zeros_like(frame)) * 255
    return cv2.cvtColor(scaled.astype(np.uint8), cv2.COLOR_GRAY2BGR)


def heat_overlay(frame: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """A grayscale or RGB frame ``(H, W[, C])`` in [0, 1] with ``heat`` ``(H, W)`` (any range,
    scaled to its own min-max) blended in with the JET colour map; BGR uint8."""
    frame = np.asarray(frame, dtype=np.float64)
    if frame.ndim == 3 and frame.shape[-1] == 1:
        frame = frame[..., 0]
    low, high = float(np.min(frame)), float(np.max(frame))
    base = ((frame - low) / (high - low) if high > low else np.zeros_like(frame)) * 255
    base = cv2.cvtColor(base.astype(np.uint8), cv2.COLOR_GRAY2BGR) if base.ndim == 2 else \
        cv2.cvtColor(base.astype(np.uint8), cv2.COLOR_RGB2BGR)
    heat = np.asarray(heat, dtype=np.float64)
    low, high = float(heat.min()), float(heat.max())
    scaled = ((heat - low) / (high - low) if high > low else np.zeros_like(heat)) * 255
    colour = cv2.applyColorMap(scaled.astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(base, 1 - alpha, colour, alpha, 0)


def overlay_grid(
    rows: Sequence[Sequence[np.ndarray]], column_titles: Sequence[str], path: str | os.PathLike,
    row_titles: Sequence[str] | None = None, points: Sequence[np.ndarray | None] | None = None, scale: int = 3,
    title: str = "",
) -> Path:
    """A grid of BGR images (each row one example), enlarged ``scale`` times, with titles;
    ``points[r]`` ``(k, 2)`` (x, y) are drawn as green circles on every image of row r
    (e.g. the gaze fixations)."""
    tiles = []
    for r, row in enumerate(rows):
        tiles_row = []
        for image in row:
            big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            if points is not None and points[r] is not None:
                for x, y in np.asarray(points[r]).reshape(-1, 2):
                    centre = (int(round((x + 0.5) * scale - 0.5)), int(round((y + 0.5) * scale - 0.5)))
                    cv2.circle(big, centre, max(3, scale + 1), (0, 255, 0), 2, cv2.LINE_AA)
            tiles_row.append(cv2.copyMakeBorder(big, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=_WHITE))
        tiles.append(np.concatenate(tiles_row, axis=1))
    body = np.concatenate(tiles, axis=0)
    left = 0 if not row_titles else max(_text_width(t) for t in row_titles) + 8
    image = np.full((body.shape[0] + 40, body.shape[1] + left, 3), 255, np.uint8)
    image[40:, left:] = body
    _text(image, title, (4, 14), 0.45)
    tile_width = body.shape[1] // max(len(column_titles), 1)
    for c, name in enumerate(column_titles):
        _text(image, name, (left + c * tile_width + 4, 34), 0.4)
    tile_height = body.shape[0] // max(len(rows), 1)
    for r, name in enumerate(row_titles or []):
        _text(image, name, (4, 40 + r * tile_height + tile_height // 2), 0.4)
    return _write(path, image)


def _write(path: str | os.PathLike, image: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: could not write the PNG")
    return path
