"""Simulated sonographer gaze: fixations on the salient structures visible in each frame.

A fixation dwells on one target structure for a few frames (about 120-320 ms at 25 fps)
and follows it as it moves through the sweep; targets are chosen by how interesting the
structure is and how much of it is visible, and the structure that defines the current
standard plane is looked at most of the time. Each frame gets 0 to 3 fixations.
"""

from __future__ import annotations

import numpy as np

from ultrassl.synth.phantom import STRUCTURE_ID, STRUCTURES

#: How much a structure attracts the eye (relative; unnamed tissue never does).
INTEREST = {
    "head": 1.0, "ventricles": 1.5, "cerebellum": 1.5, "face": 1.0, "lips": 1.5, "heart": 2.0,
    "great_vessels": 1.5, "stomach": 1.5, "umbilical_vein": 1.0, "kidney": 1.5, "bladder": 0.8,
    "spine": 1.2, "femur": 1.5, "limb": 0.5, "cord": 0.4, "placenta": 0.3,
}
_MIN_SAMPLES = 6  # a structure must cover a few beam samples to be seen


class GazeSimulator:
    """Draws per-frame fixations from the beam-space map of structure owners.

    Args:
        rng: source of randomness (one per sweep).
        sample_x, sample_y: (n_radii, n_angles) pixel coordinates of every beam sample.
        fan: bool (H, W) sector mask; fixations always land inside it.
        p_blank: probability of a frame without fixation (blink, saccade).
        p_plane_target: probability of looking at the plane's key structure when visible.
    """

    def __init__(self, rng: np.random.Generator, sample_x: np.ndarray, sample_y: np.ndarray, fan: np.ndarray,
                 p_blank: float = 0.05, p_plane_target: float = 0.75):
        self.rng = rng
        self.x = sample_x.reshape(-1)
        self.y = sample_y.reshape(-1)
        self.fan = fan
        self.p_blank = p_blank
        self.p_plane_target = p_plane_target
        self.target: int | None = None
        self.dwell = 0
        self.offset: np.ndarray | None = None
        self.plane_keys: tuple[str, ...] = ()

    def _inside(self, x: float, y: float) -> bool:
        r, c = int(round(y)), int(round(x))
        return 0 <= r < self.fan.shape[0] and 0 <= c < self.fan.shape[1] and bool(self.fan[r, c])

    def _choose(self, counts: dict[int, int], keys: tuple[str, ...], exclude: int | None = None) -> int | None:
        ids = [i for i in counts if i != exclude]
        if not ids:
            return None
        key_ids = [STRUCTURE_ID[k] for k in keys if STRUCTURE_ID[k] in ids]
        if key_ids and self.rng.random() < self.p_plane_target:
            ids = key_ids
        weights = np.array([INTEREST[STRUCTURES[i]] * np.sqrt(counts[i]) for i in ids])
        return int(ids[self.rng.choice(len(ids), p=weights / weights.sum())])

    def _point_on(self, owner: np.ndarray, structure: int, offset: np.ndarray | None) -> tuple[float, float]:
        where = np.flatnonzero(owner == structure)
        cx, cy = self.x[where].mean(), self.y[where].mean()
        if offset is None:  # a new spot on the structure, drawn towards its centre
            pick = where[self.rng.integers(len(where))]
            offset = 0.5 * np.array([self.x[pick] - cx, self.y[pick] - cy])
        x, y = cx + offset[0] + self.rng.normal(0, 1.0), cy + offset[1] + self.rng.normal(0, 1.0)
        if not self._inside(x, y):  # fall back on the structure itself, which lies in the fan
            nearest = where[np.argmin((self.x[where] - x) ** 2 + (self.y[where] - y) ** 2)]
            x, y = float(self.x[nearest]), float(self.y[nearest])
        return float(x), float(y)

    def step(self, owner: np.ndarray, plane_keys: tuple[str, ...]) -> list[tuple[float, float]]:
        """Fixations (x = column, y = row, in pixels) for the next frame.

        Args:
            owner: (n_radii, n_angles) int index into :data:`STRUCTURES` per beam sample.
            plane_keys: the key structures of the frame's standard plane (empty for background).
        """
        owner = owner.reshape(-1)
        ids, n = np.unique(owner, return_counts=True)
        counts = {int(i): int(c) for i, c in zip(ids, n) if i != 0 and c >= _MIN_SAMPLES}
        if self.rng.random() < self.p_blank:
            return []
        if not counts:
            self.target = None
            if self.rng.random() < 0.5:
                return []
            # searching: a look at the middle of the sector
            inside = np.flatnonzero(self.fan.reshape(-1))
            pick = inside[self.rng.integers(len(inside))]
            row, col = divmod(int(pick), self.fan.shape[1])
            return [(float(col), float(row))]
        if plane_keys != self.plane_keys:  # a standard plane comes into view (or goes): look again
            self.plane_keys = plane_keys
            self.dwell = 0
        if self.target not in counts or self.dwell <= 0:
            self.target = self._choose(counts, plane_keys)
            self.dwell = int(self.rng.integers(3, 9))
            self.offset = None
        self.dwell -= 1
        x, y = self._point_on(owner, self.target, self.offset)
        if self.offset is None:
            where = np.flatnonzero(owner == self.target)
            self.offset = np.array([x - self.x[where].mean(), y - self.y[where].mean()])
        fixations = [(x, y)]
        extra = self.rng.choice(3, p=[0.5, 0.35, 0.15])
        for _ in range(extra):
            other = self.target if self.rng.random() < 0.6 else self._choose(counts, plane_keys, self.target)
            fixations.append(self._point_on(owner, self.target if other is None else other, None))
        return fixations
