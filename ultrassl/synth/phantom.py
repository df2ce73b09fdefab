"""Analytic 3D phantom of a pregnant abdomen with a mid-trimester fetus.

Tissue is described by solid primitives (ellipsoids, ellipsoidal shells, capsules and a
periodic vertebral column) that are evaluated point-wise, so a slice in any orientation
can be rendered without building a voxel volume. Each primitive carries a material
(echogenicity, attenuation) and optionally the name of a salient structure that the gaze
simulator and the plane labels refer to.

Frames:
    world  (x, y, z) in cm: x lateral, y elevation (the sweep direction), z depth below
           the skin at the centre of the sweep.
    fetal  (u, v, s) in fetal units (1 unit = ``scale`` cm): u towards the fetal left,
           v anterior, s caudal from the vertex; right-handed (u x v = s).

No library evaluates analytic solid phantoms on arbitrary slices, hence the hand-written
geometry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Salient structures (gaze targets and plane keys), in a fixed order; index 0 = none.
STRUCTURES: tuple[str, ...] = (
    "none",
    "head",
    "ventricles",
    "cerebellum",
    "face",
    "lips",
    "heart",
    "great_vessels",
    "stomach",
    "umbilical_vein",
    "kidney",
    "bladder",
    "spine",
    "femur",
    "limb",
    "cord",
    "placenta",
)
STRUCTURE_ID = {name: i for i, name in enumerate(STRUCTURES)}


@dataclass(frozen=True)
class Material:
    """Echogenicity (linear backscatter amplitude, soft tissue ~0.3) and two-way
    attenuation in dB/cm (bone shadows, fluid enhances)."""

    echo: float
    attenuation_db_cm: float = 1.2


FLUID = Material(0.006, 0.3)
BONE = Material(2.4, 25.0)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


@dataclass
class Primitive:
    """Base of the solids. ``center``/``radius`` bound the solid for slice culling.

    ``clips``: half-slabs ``(normal, lo, hi)`` keeping points with
    ``lo <= normal . (q - center) <= hi``.
    """

    material: Material
    structure: str = "none"
    clips: tuple = ()
    center: np.ndarray = field(default_factory=lambda: np.zeros(3))
    radius: float = 0.0

    def contains(self, q: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _clip(self, q: np.ndarray, mask: np.ndarray) -> np.ndarray:
        for normal, lo, hi in self.clips:
            d = (q - self.center) @ np.asarray(normal, dtype=q.dtype)
            mask &= (d >= lo) & (d <= hi)
        return mask


@dataclass
class Ellipsoid(Primitive):
    """Solid ellipsoid, or a shell of thickness ``shell`` when given.

    ``axes``: rotation whose columns are the ellipsoid's own axes in the parent frame.
    """

    semi: np.ndarray = field(default_factory=lambda: np.ones(3))
    axes: np.ndarray = field(default_factory=lambda: np.eye(3))
    shell: float | None = None
    bound: float | None = None  # a tighter bounding radius when clips cut most of it away

    def __post_init__(self):
        self.center = np.asarray(self.center, dtype=np.float64)
        self.semi = np.asarray(self.semi, dtype=np.float64)
        self.radius = float(self.semi.max()) if self.bound is None else float(self.bound)

    def contains(self, q):
        local = (q - self.center.astype(q.dtype)) @ self.axes.astype(q.dtype)
        r2 = ((local / self.semi.astype(q.dtype)) ** 2).sum(axis=1)
        mask = r2 <= 1.0
        if self.shell is not None and mask.any():
            inner = np.maximum(self.semi - self.shell, 1e-3).astype(q.dtype)
            mask &= ((local / inner) ** 2).sum(axis=1) > 1.0
        return self._clip(q, mask) if self.clips else mask


@dataclass
class Capsule(Primitive):
    """Points within ``thickness`` of the segment p0-p1 (bones, vessels, limbs)."""

    p0: np.ndarray = field(default_factory=lambda: np.zeros(3))
    p1: np.ndarray = field(default_factory=lambda: np.zeros(3))
    thickness: float = 0.1

    def __post_init__(self):
        self.p0 = np.asarray(self.p0, dtype=np.float64)
        self.p1 = np.asarray(self.p1, dtype=np.float64)
        self.center = (self.p0 + self.p1) / 2
        self.radius = float(np.linalg.norm(self.p1 - self.p0) / 2 + self.thickness)

    def contains(self, q):
        axis = (self.p1 - self.p0).astype(q.dtype)
        d = q - self.p0.astype(q.dtype)
        t = np.clip(d @ axis / max(float(axis @ axis), 1e-9), 0.0, 1.0)
        dist2 = ((d - t[:, None] * axis) ** 2).sum(axis=1)
        mask = dist2 <= self.thickness**2
        return self._clip(q, mask) if self.clips else mask


@dataclass
class Trunk(Primitive):
    """A body segment along s: elliptic cross-section (semi-axes ``semi_u``, ``semi_v``)
    between ``s0`` and ``s1``, closed by half-ellipsoid caps of length ``cap``."""

    s0: float = 0.0
    s1: float = 1.0
    semi_u: float = 1.0
    semi_v: float = 1.0
    cap: float = 0.5
    v0: float = 0.0

    def __post_init__(self):
        self.center = np.array([0.0, self.v0, (self.s0 + self.s1) / 2])
        self.radius = float(np.sqrt(((self.s1 - self.s0) / 2 + self.cap) ** 2 + max(self.semi_u, self.semi_v) ** 2))

    def contains(self, q):
        beyond = q[:, 2] - np.clip(q[:, 2], self.s0, self.s1)
        return (q[:, 0] / self.semi_u) ** 2 + ((q[:, 1] - self.v0) / self.semi_v) ** 2 + (beyond / self.cap) ** 2 <= 1.0


@dataclass
class VertebralColumn(Primitive):
    """Ossification centres repeated along s: one ellipsoid per (vertebra, offset).

    Evaluated as a single periodic solid (one pass instead of one per vertebra).
    ``offsets``: rows (u, v, semi_u, semi_v, semi_s) relative to the column's axis at
    (0, v_axis, s).
    """

    s_first: float = 0.0
    pitch: float = 0.3
    count: int = 1
    v_axis: float = -1.0
    offsets: np.ndarray = field(default_factory=lambda: np.zeros((1, 5)))

    def __post_init__(self):
        s_last = self.s_first + self.pitch * (self.count - 1)
        self.center = np.array([0.0, self.v_axis, (self.s_first + s_last) / 2])
        self.radius = float((s_last - self.s_first) / 2 + 0.8)
        self.offsets = np.asarray(self.offsets, dtype=np.float64)

    def contains(self, q):
        k = np.clip(np.rint((q[:, 2] - self.s_first) / self.pitch), 0, self.count - 1)
        ds = q[:, 2] - (self.s_first + k * self.pitch)
        mask = np.zeros(len(q), dtype=bool)
        for u0, v0, a, b, c in self.offsets:
            mask |= ((q[:, 0] - u0) / a) ** 2 + ((q[:, 1] - self.v_axis - v0) / b) ** 2 + (ds / c) ** 2 <= 1.0
        return mask


def _tissue(rng: np.random.Generator, echo: float, attenuation: float = 1.2, spread: float = 0.12) -> Material:
    """A material whose echogenicity varies between subjects by about ``spread``."""
    return Material(float(echo * np.exp(rng.normal(0.0, spread))), attenuation)


def _rotation_about(axis, angle_rad: float) -> np.ndarray:
    """Rodrigues rotation matrix."""
    k = _unit(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * kx + (1 - np.cos(angle_rad)) * kx @ kx


def build_fetus(rng: np.random.Generator) -> list[Primitive]:
    """The fetal anatomy in fetal units, painted in list order (later wins).

    Proportions follow a ~20-week fetus (biparietal diameter ~4.7, head circumference ~18,
    femur ~3.2 units); the subject's size is applied by the pose's scale.
    """
    jit = lambda sd=0.05: float(rng.normal(0.0, sd))  # noqa: E731 - small anatomical variation
    soft = _tissue(rng, 0.30)
    prims: list[Primitive] = []
    add = prims.append

    # --- body envelopes (painted first, organs override) ---
    add(Capsule(soft, "limb", p0=[2.0, 0.2, 5.6], p1=[2.25, 1.6, 7.6], thickness=0.42))  # left upper arm
    add(Capsule(soft, "limb", p0=[2.25, 1.6, 7.6], p1=[1.0, 2.6, 6.9], thickness=0.36))  # left forearm
    add(Capsule(soft, "limb", p0=[-2.0, 0.2, 5.6], p1=[-2.3, 1.3, 7.7], thickness=0.42))
    add(Capsule(soft, "limb", p0=[-2.3, 1.3, 7.7], p1=[-1.2, 2.5, 7.2], thickness=0.36))
    add(Capsule(soft, "limb", p0=[1.2, 0.1, 11.3], p1=[1.45, 3.1, 11.35], thickness=0.6))  # left thigh
    add(Capsule(soft, "limb", p0=[1.45, 3.1, 11.35], p1=[1.3, 2.7, 14.0], thickness=0.45))
    add(Capsule(soft, "limb", p0=[-1.2, 0.1, 11.4], p1=[-1.6, 2.7, 12.6], thickness=0.6))  # right thigh
    add(Capsule(soft, "limb", p0=[-1.6, 2.7, 12.6], p1=[-1.1, 2.0, 14.6], thickness=0.45))
    add(Capsule(soft, p0=[0, -0.2, 3.8], p1=[0, -0.1, 5.6], thickness=1.2))  # neck
    add(Trunk(soft, s0=6.2, s1=10.6, semi_u=1.95 + jit(), semi_v=1.8 + jit(), cap=1.2, v0=0.0))  # chest, belly, pelvis
    add(Ellipsoid(soft, "face", center=[0, 1.9, 3.9], semi=[1.5, 1.3, 1.1]))  # lower face

    # --- head ---
    head_c = np.array([0.0, 0.0, 2.5])
    head_semi = np.array([2.35 + jit(), 2.95 + jit(), 2.5])
    add(Ellipsoid(BONE, "head", center=head_c, semi=head_semi, shell=0.17))  # skull
    add(Ellipsoid(_tissue(rng, 0.1), "head", center=head_c, semi=head_semi - 0.17))  # brain
    add(Ellipsoid(_tissue(rng, 0.9), "head", center=head_c + [0, -0.2, -0.3], semi=[0.07, 2.6, 2.0]))  # falx
    add(Ellipsoid(FLUID, "head", center=[0, 1.15, 2.25], semi=[0.22, 0.42, 0.35]))  # cavum septi pellucidi
    for side in (-1, 1):
        add(Ellipsoid(FLUID, "ventricles", center=[side * 0.8, -0.3, 1.95], semi=[0.28, 1.75, 0.5],
                      axes=_rotation_about([0, 0, 1], side * 0.12)))
        add(Ellipsoid(_tissue(rng, 0.95), "ventricles", center=[side * 0.85, -1.15, 1.95], semi=[0.2, 0.6, 0.35]))
        add(Ellipsoid(_tissue(rng, 0.22), "head", center=[side * 0.45, 0.05, 2.75], semi=[0.45, 0.65, 0.45]))  # thalami
    add(Ellipsoid(FLUID, "cerebellum", center=[0, -2.3, 3.15], semi=[0.75, 0.4, 0.55]))  # cisterna magna
    for side in (-1, 1):
        add(Ellipsoid(_tissue(rng, 0.45), "cerebellum", center=[side * 0.55, -1.75, 3.1], semi=[0.5, 0.45, 0.55]))
    add(Ellipsoid(_tissue(rng, 0.75), "cerebellum", center=[0, -1.8, 3.1], semi=[0.2, 0.45, 0.5]))  # vermis
    for side in (-1, 1):  # orbits: bony rim around a dark globe
        add(Ellipsoid(BONE, "face", center=[side * 1.0, 2.3, 3.25], semi=[0.45, 0.45, 0.45], shell=0.07))
        add(Ellipsoid(FLUID, "face", center=[side * 1.0, 2.3, 3.25], semi=[0.37, 0.37, 0.37]))

    # --- face ---
    add(Capsule(_tissue(rng, 0.4), "face", p0=[0, 2.85, 3.45], p1=[0, 3.35, 3.85], thickness=0.24))  # nose
    add(Capsule(BONE, "face", p0=[0, 2.75, 3.1], p1=[0, 3.1, 3.55], thickness=0.07))  # nasal bone
    for side in (-1, 1):
        add(Ellipsoid(FLUID, "lips", center=[side * 0.13, 3.35, 3.9], semi=[0.07, 0.12, 0.07]))  # nostrils
    add(Ellipsoid(_tissue(rng, 0.55), "lips", center=[0, 3.0, 4.15], semi=[0.7, 0.3, 0.13]))  # upper lip
    add(Ellipsoid(_tissue(rng, 0.55), "lips", center=[0, 2.9, 4.47], semi=[0.58, 0.3, 0.14]))  # lower lip
    add(Ellipsoid(FLUID, "lips", center=[0, 2.85, 4.31], semi=[0.45, 0.34, 0.03]))  # mouth
    add(Ellipsoid(BONE, "face", center=[0, 1.7, 4.55], semi=[1.15, 1.3, 0.45], shell=0.1,
                  clips=(((0, 1, 0), 0.5, 5.0),)))  # mandible
    add(Capsule(BONE, "face", p0=[0, 2.9, 4.85], p1=[0, 2.6, 5.0], thickness=0.1))  # chin

    # --- thorax ---
    for side in (-1, 1):
        add(Ellipsoid(_tissue(rng, 0.48), center=[side * 1.05, -0.25, 6.75], semi=[0.85, 1.05, 1.35]))  # lungs
    for k in range(7):  # ribs: thin tilted slabs of a shell around the chest
        s_k = 5.5 + 0.45 * k
        add(Ellipsoid(_tissue(rng, 1.6, 15.0), center=[0, 0.0, s_k], semi=[1.9, 1.62, 3.0], shell=0.1,
                      clips=((_unit([0, -0.35, 1]), -0.05, 0.05), ((0, 1, 0), -5.0, 0.9)), bound=2.0))
    heart_c = np.array([0.45 + jit(), 0.45 + jit(), 6.95])
    angle = np.deg2rad(45 + rng.normal(0, 8))
    apex = np.array([np.cos(angle), np.sin(angle), 0.0])  # towards the anterior left
    across = np.array([-np.sin(angle), np.cos(angle), 0.0])  # towards the anterior right
    heart_axes = np.stack([apex, across, [0, 0, 1]], axis=1)
    add(Ellipsoid(_tissue(rng, 0.6), "heart", center=heart_c, semi=[1.2, 1.0, 0.8], axes=heart_axes))
    lv = heart_c + 0.36 * apex - 0.37 * across
    rv = heart_c + 0.36 * apex + 0.37 * across
    for centre, semi in (
        (lv, [0.46, 0.31, 0.6]),
        (rv, [0.46, 0.31, 0.6]),
        (heart_c - 0.45 * apex - 0.37 * across, [0.33, 0.31, 0.55]),  # left atrium
        (heart_c - 0.45 * apex + 0.37 * across, [0.33, 0.31, 0.55]),  # right atrium
    ):
        add(Ellipsoid(FLUID, "heart", center=centre, semi=semi, axes=heart_axes))
    # outflow tracts lie nearly in transverse planes just cranial to the four-chamber plane
    aortic_root = np.array([-0.1, 0.45, 6.6])
    add(Capsule(FLUID, "great_vessels", p0=lv + [0, 0, -0.3], p1=aortic_root, thickness=0.2))  # LVOT
    add(Capsule(FLUID, "great_vessels", p0=aortic_root, p1=[0.0, 0.2, 5.3], thickness=0.2))  # ascending aorta
    add(Capsule(FLUID, "heart", p0=rv, p1=[0.5, 0.9, 6.3], thickness=0.25))  # RV infundibulum
    pa_root = np.array([0.85, 0.25, 6.3])
    add(Capsule(FLUID, "great_vessels", p0=[0.5, 0.9, 6.3], p1=pa_root, thickness=0.22))  # RVOT
    add(Capsule(FLUID, "great_vessels", p0=pa_root, p1=[0.8, 0.3, 5.4], thickness=0.24))  # pulmonary trunk
    add(Capsule(FLUID, "great_vessels", p0=[-0.6, -0.05, 5.3], p1=[-0.6, -0.05, 6.4], thickness=0.15))  # SVC
    add(Capsule(FLUID, "great_vessels", p0=[0.35, -0.75, 5.5], p1=[0.2, -0.75, 10.6], thickness=0.16))  # descending aorta

    # --- abdomen ---
    add(Ellipsoid(_tissue(rng, 0.36), center=[-0.4, 0.3, 8.8], semi=[1.6, 1.4, 1.1]))  # liver
    add(Ellipsoid(FLUID, "stomach", center=[0.75, 0.1, 9.0], semi=[0.5, 0.62, 0.65],
                  axes=_rotation_about([0, 0, 1], 0.5)))
    add(Capsule(FLUID, "umbilical_vein", p0=[0.0, 1.85, 9.05], p1=[-0.35, 0.7, 9.0], thickness=0.12))
    add(Capsule(FLUID, "umbilical_vein", p0=[-0.35, 0.7, 9.0], p1=[0.15, 0.1, 8.95], thickness=0.1))
    add(Ellipsoid(_tissue(rng, 0.6), center=[0, 0.6, 10.3], semi=[1.2, 0.9, 0.65]))  # bowel
    add(Ellipsoid(FLUID, "bladder", center=[0, 0.8, 11.0], semi=[0.45, 0.45, 0.5]))
    for side in (-1, 1):
        kc = np.array([side * 1.0, -0.7, 10.0])
        add(Ellipsoid(_tissue(rng, 0.8), "kidney", center=kc, semi=[0.45, 0.55, 0.8], shell=0.08))
        add(Ellipsoid(_tissue(rng, 0.22), "kidney", center=kc, semi=[0.37, 0.47, 0.72]))
        add(Ellipsoid(FLUID, "kidney", center=kc + [-side * 0.12, 0.12, 0], semi=[0.12, 0.14, 0.3]))

    # --- skeleton of the limbs ---
    add(Capsule(BONE, "femur", p0=[1.23, 0.35, 11.3], p1=[1.43, 2.85, 11.35], thickness=0.12))
    add(Capsule(BONE, "femur", p0=[-1.25, 0.3, 11.45], p1=[-1.55, 2.45, 12.5], thickness=0.12))
    add(Capsule(BONE, "limb", p0=[1.43, 3.0, 11.6], p1=[1.32, 2.75, 13.7], thickness=0.09))  # tibia
    add(Capsule(BONE, "limb", p0=[-1.55, 2.6, 12.8], p1=[-1.15, 2.05, 14.3], thickness=0.09))
    add(Capsule(BONE, "limb", p0=[2.02, 0.3, 5.75], p1=[2.23, 1.5, 7.4], thickness=0.09))  # humerus
    add(Capsule(BONE, "limb", p0=[-2.02, 0.3, 5.75], p1=[-2.28, 1.25, 7.5], thickness=0.09))

    # --- spine: vertebral body plus two posterior (laminar) centres per level ---
    for first in range(0, 26, 6):  # in short runs, so that a slice only evaluates the nearby ones
        add(VertebralColumn(BONE, "spine", s_first=4.7 + 0.3 * first, pitch=0.3, count=min(6, 26 - first),
                            v_axis=-1.0 - 0.12 * np.sin(np.pi * first / 26),
                            offsets=[[0.0, 0.0, 0.14, 0.2, 0.1], [0.33, -0.38, 0.1, 0.22, 0.09],
                                     [-0.33, -0.38, 0.1, 0.22, 0.09], [0.0, -0.58, 0.07, 0.12, 0.08]]))

    # --- umbilical cord from the abdominal insertion into the fluid ---
    cord = _tissue(rng, 0.32)
    path = [np.array([0, 1.8, 10.3]), np.array([0.4, 3.4, 10.0]), np.array([1.4, 4.3, 8.6]),
            np.array([2.6, 4.6, 7.0])]
    for a, b in zip(path[:-1], path[1:]):
        add(Capsule(cord, "cord", p0=a, p1=b, thickness=0.45))
        add(Capsule(FLUID, "cord", p0=a + [0.12, 0, 0], p1=b + [0.12, 0, 0], thickness=0.13))
        add(Capsule(FLUID, "cord", p0=a - [0.12, 0, 0], p1=b - [0.12, 0, 0], thickness=0.09))
    return prims


@dataclass
class MaternalAnatomy:
    """Abdominal wall layers, uterus and placenta in world coordinates (cm)."""

    fat_cm: float
    muscle_cm: float
    uterus: Ellipsoid
    uterine_cavity: Ellipsoid
    placenta: Ellipsoid
    wall_wave: tuple[float, float, float]  # amplitude (cm), spatial frequency x, y (rad/cm)
    fat: Material
    muscle: Material
    deep: Material

    def paint(self, points: np.ndarray, echo: np.ndarray, atten: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """Fill echo/attenuation (N,) for the uterus and placenta (before the fetus).

        Returns the mask of points where fetal tissue may lie: the uterine cavity and the
        posterior uterine wall (a fetus lying against it), never the wall near the probe.
        """
        echo[:] = self.deep.echo
        atten[:] = self.deep.attenuation_db_cm
        uterus = self.uterus.contains(points)
        cavity = self.uterine_cavity.contains(points)
        placenta = self.placenta.contains(points)
        for mask, material in ((uterus, self.uterus.material), (cavity, FLUID), (placenta, self.placenta.material)):
            echo[mask] = material.echo
            atten[mask] = material.attenuation_db_cm
        owner[placenta] = STRUCTURE_ID["placenta"]
        return cavity | (uterus & (points[:, 2] > self.uterus.center[2]))

    def paint_wall(self, z, wave, echo, atten, owner) -> None:
        """Skin, fat and muscle over everything else (the fetus never enters the wall);
        ``z`` is the depth below the transducer face, which the wall follows."""
        fat_end = self.fat_cm + wave
        muscle_end = fat_end + self.muscle_cm
        in_muscle = (z >= fat_end) & (z < muscle_end)
        in_fat = (z >= 0.12) & (z < fat_end)
        skin = z < 0.12
        for mask, material in ((in_muscle, self.muscle), (in_fat, self.fat), (skin, Material(0.9, 2.0))):
            echo[mask] = material.echo
            atten[mask] = material.attenuation_db_cm
            owner[mask] = 0
        # striations of the rectus muscle and fat septa: thin brighter bands
        bands = in_muscle & (np.sin((z - fat_end) * 38.0) > 0.75)
        echo[bands] *= 1.8
        septa = in_fat & (np.sin((z + 0.3 * wave) * 9.0) > 0.93)
        echo[septa] *= 2.5


def build_mother(rng: np.random.Generator, depth_cm: float) -> MaternalAnatomy:
    """A uterus filling the field of view below a randomised abdominal wall."""
    fat = float(rng.uniform(0.4, 1.1))
    muscle = float(rng.uniform(0.3, 0.6))
    top = fat + muscle + rng.uniform(0.0, 0.4)
    bottom = depth_cm + rng.uniform(-1.5, 1.5)
    centre = np.array([rng.normal(0, 1.0), rng.normal(0, 1.0), (top + bottom) / 2])
    semi = np.array([rng.uniform(10, 13), rng.uniform(11, 14), (bottom - top) / 2])
    wall = float(rng.uniform(0.5, 0.8))
    myometrium = _tissue(rng, 0.25)
    uterus = Ellipsoid(myometrium, center=centre, semi=semi)
    cavity = Ellipsoid(FLUID, center=centre, semi=semi - wall)
    # placenta: a thick cap of the cavity's wall, anterior (near the probe) or posterior
    direction = _unit([rng.normal(0, 0.5), rng.normal(0, 0.5), 1.0 if rng.random() < 0.5 else -1.0])
    reach = float(rng.uniform(0.75, 0.9))
    placenta = Ellipsoid(_tissue(rng, 0.5, 1.4), "placenta", center=centre, semi=semi - wall,
                         shell=float(rng.uniform(1.8, 2.8)),
                         clips=((direction, reach * float(np.abs(direction * (semi - wall)).max()), 1e3),))
    wave = (float(rng.uniform(0.05, 0.25)), float(rng.uniform(0.2, 0.6)), float(rng.uniform(0.1, 0.4)))
    return MaternalAnatomy(fat, muscle, uterus, cavity, placenta, wave, _tissue(rng, 0.12), _tissue(rng, 0.28),
                           _tissue(rng, 0.3))


@dataclass
class Phantom:
    """One subject: maternal anatomy (world frame) and fetal anatomy (fetal frame)."""

    mother: MaternalAnatomy
    fetus: list[Primitive]

    def __post_init__(self):
        self._centres = np.array([p.center for p in self.fetus])
        self._radii = np.array([p.radius for p in self.fetus])

    def evaluate(self, grid, fetal_rotation: np.ndarray, fetal_origin: np.ndarray, fetal_scale: float):
        """Material properties at the beam samples of one frame.

        Args:
            grid: a :class:`ultrassl.synth.bmode.SliceGrid` (world points (n_radii, n_angles, 3)
                and a lookup of the samples a sphere can touch).
            fetal_rotation: (3, 3) columns = world directions of the fetal u, v, s axes.
            fetal_origin: world position (cm) of the fetal origin (vertex).
            fetal_scale: cm per fetal unit.

        Returns:
            echo (n_radii, n_angles) linear amplitude, attenuation (same) in dB/cm, owner
            (same) int8 index into :data:`STRUCTURES` of the salient structure seen there.
        """
        shape = grid.points.shape[:2]
        flat = grid.points.reshape(-1, 3)
        echo = np.empty(flat.shape[0], dtype=np.float32)
        atten = np.empty(flat.shape[0], dtype=np.float32)
        owner = np.zeros(flat.shape[0], dtype=np.int8)
        allowed = self.mother.paint(flat, echo, atten, owner).reshape(shape)
        echo, atten, owner = echo.reshape(shape), atten.reshape(shape), owner.reshape(shape)
        q_all = (grid.points - fetal_origin.astype(np.float32)) @ (fetal_rotation / fetal_scale).astype(np.float32)
        centres_world = (fetal_scale * self._centres) @ fetal_rotation.T + fetal_origin
        for prim, centre, radius in zip(self.fetus, centres_world, self._radii * fetal_scale):
            box = grid.box(centre, radius)
            if box is None:
                continue
            i0, i1, j0, j1 = box
            q = q_all[i0:i1, j0:j1].reshape(-1, 3)
            mask = prim.contains(q).reshape(i1 - i0, j1 - j0) & allowed[i0:i1, j0:j1]
            if not mask.any():
                continue
            echo[i0:i1, j0:j1][mask] = prim.material.echo
            atten[i0:i1, j0:j1][mask] = prim.material.attenuation_db_cm
            owner[i0:i1, j0:j1][mask] = STRUCTURE_ID[prim.structure]
        x, y = grid.points[..., 0], grid.points[..., 1]
        amp, fx, fy = self.mother.wall_wave
        wave = amp * np.sin(fx * x + 0.7) * np.cos(fy * y + 0.3)
        self.mother.paint_wall(grid.face_depth, wave, echo, atten, owner)
        return echo, atten, owner


def build_phantom(rng: np.random.Generator, depth_cm: float) -> Phantom:
    """A random subject (sizes, echogenicities, placenta site, wall thickness)."""
    return Phantom(build_mother(rng, depth_cm), build_fetus(rng))
