"""The benchmark's data: simulated once per simulator seed, split by subject into pools.

Each domain of a profile is one simulated data set (fetal sweeps, or motion clips whose
UCF101-style groups play the part of subjects), indexed through the readers like clinical
data. Its subjects are split into three disjoint pools (:func:`split_pools`): an unlabelled
``pretrain`` pool, a ``labelled`` pool the downstream arms train on, and ``test`` subjects
that neither sees. The split depends on the simulator seed alone, so every seed of a run is
scored on the same test subjects and a paired difference compares like with like.

Label fractions are drawn per seed from the labelled pool as prefixes of one permutation
(:func:`label_subsets`), so the 5 % subjects are among the 20 % ones, which are among the
100 %: a larger fraction only adds labels. A profile may ask for several label draws per
seed (``label_draws``): draw ``d`` is the prefixes of another permutation, drawn
independently (two draws of a small pool may coincide). Below 100 % a seed's figure then
averages its draws, because with few labelled subjects which subjects they are moves a
score more than anything the arms differ in. Draw 0 is the same for every profile, so a
run with one draw is a run with more, minus the others.

Manifests (:func:`write_manifests`, beside the data so that their paths stay relative and
their SHA-256 names the data):

* ``pretrain.csv``: the pretrain pool as ``train``; the labelled pool as ``val`` (the
  pretext metrics on subjects pretraining does not train on; the test subjects stay unseen);
* ``labelled_<fraction>_seed<k>.csv``: the fraction's subjects as ``train``, the test
  subjects as ``val`` (``labelled_<fraction>_seed<k>_draw<d>.csv`` for draws ``d`` >= 1).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ultrassl.benchmark.profile import Domain, Pools
from ultrassl.benchmark.store import write_json
from ultrassl.data.indexing import index_folder
from ultrassl.data.manifest import read_manifest, write_manifest

#: the manifest column whose values are split into pools
UNIT_COLUMN = "subject"


@dataclass(frozen=True)
class PoolSplit:
    """The subjects of each pool (sorted)."""

    pretrain: list[str]
    labelled: list[str]
    test: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return asdict(self)


def split_pools(units: Sequence[str], sizes: Pools, seed: int) -> PoolSplit:
    """Split ``units`` (subject names) into the three pools of ``sizes``, by a permutation
    drawn from ``seed``. The test subjects are drawn first, so a larger pretrain pool never
    changes the test set.

    Raises:
        ValueError: fewer units than the pools need, or duplicate names.
    """
    units = sorted(str(u) for u in units)
    if len(set(units)) != len(units):
        raise ValueError("subject names must be distinct")
    if sizes.total > len(units):
        raise ValueError(f"the pools need {sizes.total} subjects ({sizes.pretrain} pretrain + {sizes.labelled} "
                         f"labelled + {sizes.test} test), the data has {len(units)}")
    order = [units[i] for i in np.random.default_rng([int(seed), 1]).permutation(len(units))]
    test = order[: sizes.test]
    labelled = order[sizes.test : sizes.test + sizes.labelled]
    pretrain = order[sizes.test + sizes.labelled : sizes.total]
    return PoolSplit(sorted(pretrain), sorted(labelled), sorted(test))


def fraction_size(n: int, fraction: float) -> int:
    """Subjects of a label fraction: ``ceil(fraction * n)``, at least one."""
    if not 0 < fraction <= 1:
        raise ValueError(f"a label fraction lies in (0, 1], got {fraction}")
    return max(1, math.ceil(fraction * n - 1e-9))


def label_subsets(labelled: Sequence[str], fractions: Sequence[float], seed: int,
                  sim_seed: int = 0, draw: int = 0) -> dict[float, list[str]]:
    """The labelled subjects of each fraction for one seed and label draw: prefixes of one
    permutation, so a smaller fraction's subjects are always among a larger one's."""
    if draw < 0:
        raise ValueError(f"a label draw is numbered from 0, got {draw}")
    labelled = sorted(str(u) for u in labelled)
    # draw 0 keeps the stream it had before draws existed: its subsets do not depend on the draws asked for
    stream = [int(sim_seed), int(seed), 2] + ([int(draw)] if draw else [])
    order = [labelled[i] for i in np.random.default_rng(stream).permutation(len(labelled))]
    return {float(f): sorted(order[: fraction_size(len(labelled), f)]) for f in fractions}


def draws_of(n: int, fraction: float, draws: int) -> int:
    """How many distinct label draws a fraction of ``n`` labelled subjects has room for when
    ``draws`` are asked: one where the fraction takes every subject, else ``draws``."""
    if draws < 1:
        raise ValueError(f"label draws must be >= 1, got {draws}")
    return 1 if fraction_size(n, fraction) >= n else int(draws)


def draw_tag(draw: int) -> str:
    """The suffix of a draw's files and folders: ``""`` for draw 0, ``"_draw<d>"`` else."""
    return f"_draw{int(draw)}" if draw else ""


def fraction_tag(fraction: float) -> str:
    """``0.05`` -> ``"5pct"`` (folder and file names)."""
    return f"{round(float(fraction) * 100, 3):g}pct"


def fraction_text(fraction: float) -> str:
    """``0.05`` -> ``"5%"`` (tables)."""
    return f"{round(float(fraction) * 100, 3):g}%"


# ---------------------------------------------------------------------------- simulation
def _simulate_fetal_sweeps(folder: Path, units: int, seed: int, options: Mapping[str, Any]) -> pd.DataFrame:
    from ultrassl.synth import synthesize_fetal_sweeps

    options = dict(options)
    per_subject = int(options.pop("sweeps_per_subject", 3))
    if "size" in options:
        options["size"] = tuple(options["size"])
    table = synthesize_fetal_sweeps(folder, n_sweeps=units * per_subject, seed=seed, sweeps_per_subject=per_subject,
                                    **options)
    return table.drop(columns=["split"])


def _simulate_motion(folder: Path, units: int, seed: int, options: Mapping[str, Any]) -> pd.DataFrame:
    from ultrassl.synth import synthesize_motion

    options = dict(options)
    per_group = int(options.pop("clips_per_group", 3))
    if "size" in options:
        options["size"] = tuple(options["size"])
    table = synthesize_motion(folder, n_per_class=units * per_group, seed=seed, clips_per_group=per_group, **options)
    # UCF101 keeps a group's clips (one actor and scene) on one side of a split: groups are the subjects
    table[UNIT_COLUMN] = [f"G{int(g):02d}" for g in table["group"]]
    return table.drop(columns=["split"])


#: the folder of each simulator's data under ``<out>/data`` (``fetal_sweeps`` as in the configs' defaults)
DATA_FOLDERS = {"fetal_sweep": "fetal_sweeps", "motion": "motion"}


def data_folder(out: str | Path, domain: Domain) -> Path:
    """Where a domain's data lives in an output folder (one simulator seed per folder)."""
    return Path(out) / "data" / DATA_FOLDERS[domain.simulator]


#: simulator name -> ``simulate(folder, units, seed, options) -> annotations`` (with a subject column)
SIMULATE: dict[str, Callable[[Path, int, int, Mapping[str, Any]], pd.DataFrame]] = {
    "fetal_sweep": _simulate_fetal_sweeps,
    "motion": _simulate_motion,
}


def simulate_domain(domain: Domain, folder: str | Path, sim_seed: int,
                    log: Callable[[str], None] = lambda _: None) -> Path:
    """Simulate and index the domain's data into ``folder`` (once: a folder whose record
    matches is reused, a partial one is made again); returns ``folder/manifest.csv``."""
    folder = Path(folder)
    record = {"simulator": domain.simulator, "options": domain.simulator_options, "subjects": domain.pools.total,
              "sim_seed": int(sim_seed)}
    marker = folder / "simulated.json"
    manifest = folder / "manifest.csv"
    done = json.loads(marker.read_text()) if marker.is_file() else None
    if done is not None and manifest.is_file() and {k: done.get(k) for k in record} == record:
        log(f"      {domain.name}: reusing the simulated data in {folder}")
        return manifest
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    log(f"      {domain.name}: simulating {domain.pools.total} subjects ({domain.simulator}, seed {sim_seed}) "
        f"into {folder}")
    started = time.perf_counter()
    annotations = SIMULATE[domain.simulator](folder, domain.pools.total, int(sim_seed), domain.simulator_options)
    table = index_folder(folder, annotations=annotations, progress=False)
    ok = table["status"] == "ok"
    if not ok.all():
        refused = table.loc[~ok, ["path", "error"]].to_string(index=False)
        raise ValueError(f"{folder}: the simulator wrote clips the readers refuse:\n{refused}")
    write_manifest(table, manifest)
    log(f"      {domain.name}: {len(table)} clips, {int(table['n_frames'].sum())} frames indexed into {manifest}")
    write_json(marker, {**record, "seconds": time.perf_counter() - started})
    return manifest


# ---------------------------------------------------------------------------- manifests
def subjects_of(manifest: str | Path) -> list[str]:
    """The distinct subjects of a manifest's ok rows."""
    table = read_manifest(manifest, status="ok")
    if UNIT_COLUMN not in table.columns:
        raise ValueError(f"{manifest}: the benchmark splits by a {UNIT_COLUMN!r} column, which this manifest lacks")
    return sorted(set(table[UNIT_COLUMN].astype(str)))


def _write_split(table: pd.DataFrame, train: Sequence[str], val: Sequence[str], path: Path) -> Path:
    subjects = table[UNIT_COLUMN].astype(str)
    chosen = table[subjects.isin(set(train) | set(val))].copy()
    chosen["split"] = np.where(chosen[UNIT_COLUMN].astype(str).isin(set(train)), "train", "val")
    write_manifest(chosen.reset_index(drop=True), path)
    return path


@dataclass(frozen=True)
class DomainData:
    """A domain's pools and manifests for a run.

    Attributes:
        pools: the subject split.
        pretrain_manifest: ``pretrain.csv`` (None when the pretrain pool is empty).
        labelled: ``{seed: {fraction: [manifest of each label draw]}}``.
        subsets: ``{seed: {fraction: [subjects of each label draw]}}``.
    """

    pools: PoolSplit
    pretrain_manifest: Path | None
    labelled: dict[int, dict[float, list[Path]]]
    subsets: dict[int, dict[float, list[list[str]]]]

    def draws(self, fraction: float, wanted: int) -> int:
        """The label draws a comparison at ``fraction`` runs when ``wanted`` are asked: the
        manifests written hold :func:`draws_of` for the most draws any task asked, so never more."""
        return min([int(wanted), *(len(by[float(fraction)]) for by in self.labelled.values())])

    def record(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "pools": self.pools.as_dict(),
            "label_subsets": {str(seed): {fraction_text(f): s[0] for f, s in by.items()}
                              for seed, by in self.subsets.items()}}
        if any(len(s) > 1 for by in self.subsets.values() for s in by.values()):
            found["label_draws"] = {str(seed): {fraction_text(f): s for f, s in by.items()}
                                    for seed, by in self.subsets.items()}
        return found


def write_manifests(manifest: str | Path, sizes: Pools, sim_seed: int, seeds: Sequence[int],
                    fractions: Sequence[float], draws: int = 1) -> DomainData:
    """Split the subjects of ``manifest`` into pools and write the pretraining manifest and
    one labelled manifest per (fraction, seed, label draw) beside it (see the module
    docstring); ``draws`` label draws per seed for every fraction short of all subjects."""
    if draws < 1:
        raise ValueError(f"label draws must be >= 1, got {draws}")
    manifest = Path(manifest)
    table = read_manifest(manifest, status="ok")
    pools = split_pools(subjects_of(manifest), sizes, sim_seed)
    folder = manifest.parent
    pretrain = None
    if pools.pretrain:
        pretrain = _write_split(table, pools.pretrain, pools.labelled, folder / "pretrain.csv")
    labelled: dict[int, dict[float, list[Path]]] = {}
    subsets: dict[int, dict[float, list[list[str]]]] = {}
    for seed in seeds:
        subsets[seed], labelled[seed] = {}, {}
        for draw in range(draws):
            room = [f for f in fractions if draw < draws_of(len(pools.labelled), f, draws)]
            for f, chosen in label_subsets(pools.labelled, room, seed, sim_seed, draw).items():
                path = folder / f"labelled_{fraction_tag(f)}_seed{seed}{draw_tag(draw)}.csv"
                subsets[seed].setdefault(f, []).append(chosen)
                labelled[seed].setdefault(f, []).append(_write_split(table, chosen, pools.test, path))
    return DomainData(pools, pretrain, labelled, subsets)
