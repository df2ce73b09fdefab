"""A benchmark profile: everything a run of the transfer benchmark does, read from YAML.

The shipped profiles are ``configs/benchmark/{demo,quick,full}.yaml``; any other YAML file
of the same shape is a profile too. Every setting a result depends on (backbone, input
size, pool sizes, budgets, seeds) lives in the profile, none in the code::

    name: quick
    seeds: [0, 1, 2]
    arms: [pretrained, random_init, supervised, baseline]
    trainer: {}                         # Lightning Trainer options of every trained run
                                        # (e.g. {accelerator: gpu, precision: bf16-mixed})
    domains:
      ultrasound:                       # one simulated data set, split by subject
        simulator: fetal_sweep          # or motion (split by UCF101-style group)
        simulator_options: {n_frames: 64, size: [128, 160], sweeps_per_subject: 3}
        pools: {pretrain: 10, labelled: 8, test: 6}      # subjects (groups for motion)
        in_channels: 1
        backbone: {name: tiny3d, kwargs: {channels: [16, 32, 64]}}
        size: [64, 80]                  # input size of every pipeline of the domain
        pretrain: {max_steps: 60, batch_size: 16, overrides: {}}
    objectives:
      order_geometry: {domain: ultrasound, config: configs/pretrain/order_geometry.yaml,
                       overrides: {model.init_args.lr: 0.003}}
    tasks:
      plane_detection:
        domain: ultrasound
        protocols: [linear, finetune]   # or {linear: {fractions: [0.2]}, finetune: {overrides: {...}}}
        fractions: [0.05, 0.2, 1.0]
        label_draws: 3                  # label subsets per seed below 100 % (a protocol may set its own)
        random_inits: 3                 # random-init networks per seed and draw, averaged (the same)
        max_steps: 100
        batch_size: 16
        ceiling: {max_steps: 1000}      # the ceiling's own budget (default: the fine-tune's)
        overrides: {}                   # dotted keys of the task config, every arm
        encoder_protocols: {knn: {ks: [1, 5, 10]}}   # options of the task's encoder protocols

Arms (``arms``): ``pretrained`` (one per objective of the task's domain), ``random_init``
(the same backbone freshly initialised), ``supervised`` (random init fine-tuned on every
labelled subject with the task's fine-tune budget, or the ``ceiling`` budget where the task
sets one: the ceiling) and ``baseline`` (the task's model-free baseline). Every comparison of
a pretrained arm with random init shares one budget; the ceiling is no such comparison (it
shows what the labels allow), so a task may give it more steps than its fine-tunes.

``random_inits`` (default 1) runs the random-init arm of a protocol on that many networks per
seed and label draw (the first with the seed's own weights, as with one) and compares each
objective with their mean; a protocol may set its own, as with ``label_draws``.

A protocol may add ``overrides`` of its own, after the task's, to its runs only: training
augmentation that a fine-tune needs but a linear probe's frozen features should not see
(``finetune: {overrides: {data.init_args.pipeline.init_args.affine_prob: 0.8}}``). The ceiling
is a fine-tune on every label, so it takes the ``finetune`` protocol's overrides, then
``ceiling: {overrides: ...}`` (for a task that lists no fine-tune). The model-free baseline
and the encoder protocols (kNN) read the data as the task's first protocol does. Paths
are relative to the profile's folder, else to the source tree. ``trainer`` options reach every
run that trains (each pretraining, fine-tune and ceiling) before the domain's, objective's and
task's own overrides, which win; the budget and the run folders are the benchmark's
(:data:`BENCHMARK_TRAINER_OPTIONS`).

A variant names the profile it starts from and states only what it changes::

    base: motion                        # a shipped profile's name, or a YAML file
    name: motion_vtdl_cep
    objectives:
      cate_natural: null                # dropped
      vtdl_natural: {overrides: {model.init_args.reversed_negative: true}}   # merged in

The merged profile's paths are then read from the variant's folder, else the source tree.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ultrassl.downstream.protocols import TRAINING_PROTOCOLS
from ultrassl.downstream.tasks import get_task

#: the source tree (configs/ lives there)
ROOT = Path(__file__).resolve().parents[2]
#: the folder of the shipped profiles
PROFILE_DIR = ROOT / "configs" / "benchmark"
#: every kind of arm a profile can ask for
ARM_KINDS = ("pretrained", "random_init", "supervised", "baseline")
#: the simulators a domain can draw its data from
SIMULATORS = ("fetal_sweep", "motion")
#: a profile's named collections: a variant drops an entry by setting it to null (``base``)
NAMED = ("domains", "objectives", "tasks")
#: what a task's protocol may set (``protocols: {finetune: {...}}``)
PROTOCOL_KEYS = ("fractions", "max_steps", "batch_size", "label_draws", "random_inits", "overrides")
#: Trainer options the benchmark sets itself (budgets, run folders, output): not a profile's
BENCHMARK_TRAINER_OPTIONS = ("max_steps", "max_epochs", "default_root_dir", "enable_progress_bar",
                             "enable_model_summary")


class ProfileError(ValueError):
    """A profile is malformed or names something that does not exist."""


@dataclass(frozen=True)
class Pools:
    """Subjects (or groups) in each pool: ``pretrain`` (unlabelled), ``labelled`` (the
    downstream training set) and ``test`` (held out from both)."""

    pretrain: int
    labelled: int
    test: int

    @property
    def total(self) -> int:
        return self.pretrain + self.labelled + self.test


@dataclass(frozen=True)
class Domain:
    """One simulated data set and what every arm trained on it shares.

    Attributes:
        name: the profile's name for it (``ultrasound``, ``natural``).
        simulator: :data:`SIMULATORS`.
        simulator_options: keyword arguments of the simulator (frames, size, ...).
        pools: the pool sizes in subjects (groups).
        in_channels: channels of the clips its pipelines produce.
        backbone: ``{"name", "kwargs"}``: the encoder of every arm of the domain.
        size: ``[H, W]`` input size of every pipeline of the domain (None: each config's).
        pretrain_max_steps, pretrain_batch_size: the pretraining budget of every objective.
        pretrain_overrides: dotted settings of every objective's config.
    """

    name: str
    simulator: str
    simulator_options: dict[str, Any]
    pools: Pools
    in_channels: int
    backbone: dict[str, Any]
    size: list[int] | None = None
    pretrain_max_steps: int | None = None
    pretrain_batch_size: int | None = None
    pretrain_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Objective:
    """A pretraining objective: its ``ultrassl fit`` config and the dotted overrides of this
    profile (applied after the domain's)."""

    name: str
    domain: str
    config: Path
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    """A training protocol of a task: the label fractions it is run at, its budget, and
    how many label subsets it is run on per seed below 100 % (``label_draws``), and over how
    many random-init networks the random-init arm of each seed and draw is averaged
    (``random_inits``)."""

    name: str
    fractions: tuple[float, ...]
    max_steps: int
    batch_size: int
    label_draws: int = 1
    overrides: dict[str, Any] = field(default_factory=dict)
    random_inits: int = 1


@dataclass(frozen=True)
class TaskPlan:
    """A downstream task of the benchmark.

    Attributes:
        name: the registry name (:mod:`ultrassl.downstream.tasks`).
        domain: the domain whose data it is trained and scored on.
        config: the task config (default ``configs/downstream/<name>.yaml``).
        protocols: the training protocols, in order.
        max_steps, batch_size: the budget of the supervised ceiling (the task's ``ceiling``,
            else the fine-tune's).
        overrides: dotted settings of every arm's config.
        ceiling_overrides: dotted settings of the ceiling's config after ``overrides``: the
            fine-tune protocol's, then the task's ``ceiling: {overrides}``.
        encoder_protocols: options of the task's encoder protocols (``{"knn": {"ks": [...]}}``).
        label_draws: label subsets per seed below 100 % of the labels for the baseline and
            the encoder protocols, and for every protocol that does not set its own.
    """

    name: str
    domain: str
    config: Path
    protocols: tuple[Protocol, ...]
    max_steps: int
    batch_size: int
    overrides: dict[str, Any] = field(default_factory=dict)
    encoder_protocols: dict[str, dict[str, Any]] = field(default_factory=dict)
    label_draws: int = 1
    ceiling_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def fractions(self) -> tuple[float, ...]:
        """Every fraction any protocol runs at, ascending."""
        return tuple(sorted({f for p in self.protocols for f in p.fractions}))


@dataclass(frozen=True)
class Profile:
    """A whole benchmark (see the module docstring); :func:`load_profile` reads one."""

    name: str
    source: Path | None
    seeds: tuple[int, ...]
    arms: tuple[str, ...]
    domains: dict[str, Domain]
    objectives: dict[str, Objective]
    tasks: dict[str, TaskPlan]
    save_models: bool = False
    trainer: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    config_files: tuple[Path, ...] = ()

    def objectives_of(self, domain: str) -> list[Objective]:
        return [o for o in self.objectives.values() if o.domain == domain] if "pretrained" in self.arms else []

    def used_domains(self) -> list[str]:
        return sorted({t.domain for t in self.tasks.values()})

    def objectives_of_tasks(self) -> list[Objective]:
        """The objectives some task of the profile transfers (their domain has a task)."""
        return [o for d in self.used_domains() for o in self.objectives_of(d)]

    def identity(self) -> dict[str, Any]:
        """What an output folder's results depend on: the profile as read, and the SHA-256
        of every config file it names (an edited config makes old checkpoints stale)."""
        files = {_shown(path): file_sha256(path) for path in self.config_files}
        return {"profile": self.raw, "config_sha256": dict(sorted(files.items()))}


def _shown(path: Path) -> str:
    """A path relative to the source tree when inside it (the record survives a move)."""
    return str(path.relative_to(ROOT)) if ROOT in path.parents else str(path)


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def profile_path(name_or_path: str | os.PathLike) -> Path:
    """``configs/benchmark/<name>.yaml`` for a shipped profile's name, else the path."""
    text = str(name_or_path)
    shipped = PROFILE_DIR / f"{text}.yaml"
    if os.sep not in text and not text.endswith((".yaml", ".yml")) and shipped.is_file():
        return shipped
    path = Path(text)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
        raise ProfileError(f"{text}: no such profile (shipped: {known}; or give a YAML file)")
    return path


def load_profile(name_or_path: str | os.PathLike | Mapping[str, Any]) -> Profile:
    """Read and check a profile: a shipped profile's name, a YAML file or a dict."""
    if isinstance(name_or_path, Mapping):
        raw, source = copy.deepcopy(dict(name_or_path)), None
        raw = _with_base(raw, "profile", ())
    else:
        source = profile_path(name_or_path).resolve()
        raw = _read_mapping(source, ())
    base = source.parent if source is not None else ROOT
    where = str(source or "profile")

    def need(node: Mapping[str, Any], key: str, context: str) -> Any:
        if key not in node or node[key] is None:
            raise ProfileError(f"{where}: {context} needs {key!r}")
        return node[key]

    def find(path: str, context: str) -> Path:
        for candidate in (base / path, ROOT / path, Path(path)):
            if candidate.is_file():
                return candidate.resolve()
        raise ProfileError(f"{where}: {context}: no such file {path!r}")

    seeds = tuple(int(s) for s in need(raw, "seeds", "the profile"))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ProfileError(f"{where}: seeds must be distinct and at least one, got {list(seeds)}")
    arms = tuple(raw.get("arms") or ARM_KINDS)
    unknown = sorted(set(arms) - set(ARM_KINDS))
    if unknown:
        raise ProfileError(f"{where}: unknown arms {unknown}; known: {', '.join(ARM_KINDS)}")

    trainer = raw.get("trainer") or {}
    if not isinstance(trainer, Mapping):
        raise ProfileError(f"{where}: trainer is a mapping of Lightning Trainer options, got {trainer!r}")
    owned = sorted(set(trainer) & set(BENCHMARK_TRAINER_OPTIONS))
    if owned:
        raise ProfileError(f"{where}: trainer: {', '.join(owned)} are set by the benchmark (the budgets are the "
                           "domains' and tasks' max_steps); remove them")

    domains = {}
    for name, node in (need(raw, "domains", "the profile") or {}).items():
        context = f"domain {name!r}"
        simulator = need(node, "simulator", context)
        if simulator not in SIMULATORS:
            raise ProfileError(f"{where}: {context}: simulator must be one of {', '.join(SIMULATORS)}")
        pools = need(node, "pools", context)
        try:
            sizes = Pools(int(pools["pretrain"]), int(pools["labelled"]), int(pools["test"]))
        except (KeyError, TypeError, ValueError):
            raise ProfileError(f"{where}: {context}: pools needs integer pretrain, labelled and test") from None
        if sizes.labelled < 1 or sizes.test < 1 or sizes.pretrain < 0:
            raise ProfileError(f"{where}: {context}: pools need >= 1 labelled and test subject, got {sizes}")
        backbone = need(node, "backbone", context)
        pretrain = node.get("pretrain") or {}
        domains[name] = Domain(
            name=name, simulator=simulator, simulator_options=dict(node.get("simulator_options") or {}),
            pools=sizes, in_channels=int(need(node, "in_channels", context)),
            backbone={"name": str(need(backbone, "name", f"{context}'s backbone")),
                      "kwargs": dict(backbone.get("kwargs") or {})},
            size=None if node.get("size") is None else [int(v) for v in node["size"]],
            pretrain_max_steps=_int_or_none(pretrain.get("max_steps")),
            pretrain_batch_size=_int_or_none(pretrain.get("batch_size")),
            pretrain_overrides=_overrides(pretrain.get("overrides"), f"{where}: domain {name!r}: pretrain"),
        )

    simulators = [d.simulator for d in domains.values()]
    if len(set(simulators)) != len(simulators):
        raise ProfileError(f"{where}: one domain per simulator (each simulator's data has one folder), got "
                           f"{', '.join(f'{d.name}: {d.simulator}' for d in domains.values())}")

    objectives = {}
    for name, node in (raw.get("objectives") or {}).items():
        context = f"objective {name!r}"
        domain = need(node, "domain", context)
        if domain not in domains:
            raise ProfileError(f"{where}: {context}: unknown domain {domain!r}")
        objectives[name] = Objective(name, domain, find(need(node, "config", context), context),
                                     _overrides(node.get("overrides"), f"{where}: {context}"))
    if "pretrained" in arms and not objectives:
        raise ProfileError(f"{where}: the pretrained arm needs at least one objective")

    tasks = {}
    for name, node in (need(raw, "tasks", "the profile") or {}).items():
        context = f"task {name!r}"
        try:
            task = get_task(name)
        except ValueError as exc:
            raise ProfileError(f"{where}: {exc}") from None
        domain = need(node, "domain", context)
        if domain not in domains:
            raise ProfileError(f"{where}: {context}: unknown domain {domain!r}")
        fractions = tuple(float(f) for f in node.get("fractions") or (1.0,))
        max_steps, batch_size = int(need(node, "max_steps", context)), int(need(node, "batch_size", context))
        label_draws = _draws(node.get("label_draws", 1), f"{where}: {context}")
        random_inits = _draws(node.get("random_inits", 1), f"{where}: {context}", "random_inits")
        listed = node.get("protocols") or task.default_protocols
        listed = {p: {} for p in listed} if isinstance(listed, (list, tuple)) else dict(listed)
        protocols = []
        for protocol, options in listed.items():
            if protocol not in TRAINING_PROTOCOLS:
                raise ProfileError(f"{where}: {context}: unknown protocol {protocol!r}; "
                                   f"known: {', '.join(TRAINING_PROTOCOLS)}")
            options = options or {}
            unknown = sorted(set(options) - set(PROTOCOL_KEYS))
            if unknown:
                raise ProfileError(f"{where}: {context}: protocol {protocol!r} takes {', '.join(PROTOCOL_KEYS)}; "
                                   f"got {unknown}")
            own = tuple(float(f) for f in options.get("fractions") or fractions)
            named = f"{where}: {context}: protocol {protocol!r}"
            protocols.append(Protocol(protocol, own, int(options.get("max_steps", max_steps)),
                                      int(options.get("batch_size", batch_size)),
                                      _draws(options.get("label_draws", label_draws), named),
                                      _overrides(options.get("overrides"), named),
                                      _draws(options.get("random_inits", random_inits), named, "random_inits")))
        for protocol in protocols:
            if not protocol.fractions or any(not 0 < f <= 1 for f in protocol.fractions):
                raise ProfileError(f"{where}: {context}: fractions must lie in (0, 1], got {list(protocol.fractions)}")
        finetune = next((p for p in protocols if p.name == "finetune"), None)
        ceiling = dict(node.get("ceiling") or {})
        if set(ceiling) - {"max_steps", "batch_size", "overrides"}:
            raise ProfileError(f"{where}: {context}: ceiling takes max_steps, batch_size and overrides, "
                               f"got {sorted(ceiling)}")
        ceiling_overrides = {**(finetune.overrides if finetune else {}),
                             **_overrides(ceiling.get("overrides"), f"{where}: {context}: ceiling")}
        encoder_protocols = {k: dict(v or {}) for k, v in (node.get("encoder_protocols") or {}).items()}
        unknown = sorted(set(encoder_protocols) - set(task.encoder_protocols))
        if unknown:
            raise ProfileError(f"{where}: {context}: {unknown} are not encoder protocols of the task "
                               f"({', '.join(task.encoder_protocols) or 'none'})")
        config = find(node["config"], context) if node.get("config") else task.default_config_path()
        tasks[name] = TaskPlan(
            name=name, domain=domain, config=config, protocols=tuple(protocols),
            max_steps=int(ceiling.get("max_steps", finetune.max_steps if finetune else max_steps)),
            batch_size=int(ceiling.get("batch_size", finetune.batch_size if finetune else batch_size)),
            overrides=_overrides(node.get("overrides"), f"{where}: {context}"), encoder_protocols=encoder_protocols,
            label_draws=label_draws, ceiling_overrides=ceiling_overrides)

    return Profile(name=str(raw.get("name") or (source.stem if source else "profile")), source=source, seeds=seeds,
                   arms=arms, domains=domains, objectives=objectives, tasks=tasks,
                   save_models=bool(raw.get("save_models", False)), trainer=dict(trainer),
                   raw=json.loads(json.dumps(raw)),
                   config_files=tuple(sorted({o.config for o in objectives.values()} | {t.config for t in tasks.values()})))


def _read_mapping(source: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """A profile file as a mapping, its ``base`` (if any) merged in."""
    if source in chain:
        cycle = " -> ".join(str(p) for p in (*chain, source))
        raise ProfileError(f"{chain[0]}: profiles name each other as base in a cycle: {cycle}")
    try:
        raw = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{source}: a profile is a mapping")
    return _with_base(raw, str(source), (*chain, source))


def _with_base(raw: dict[str, Any], where: str, chain: tuple[Path, ...]) -> dict[str, Any]:
    """``raw`` over the profile its ``base`` names (a shipped profile's name or a file, relative
    to ``raw``'s folder first), so that a variant states only what it changes.

    Mappings merge key by key and any other value (a list, a number, null) replaces the base's,
    except that an entry of :data:`NAMED` set to null is dropped: ``objectives: {cate: null}``
    runs the base's profile without CATE. The result has no ``base`` key: a run records the
    profile it ran, not how it was written.
    """
    if "base" not in raw:
        return raw
    name = raw.pop("base")
    if not isinstance(name, str) or not name:
        raise ProfileError(f"{where}: base names a profile (a shipped name or a YAML file), got {name!r}")
    sibling = chain[-1].parent / name if chain else None
    path = sibling if sibling is not None and sibling.is_file() else profile_path(name)
    merged = _merged(_read_mapping(path.resolve(), chain), raw)
    for key in NAMED:
        if isinstance(merged.get(key), dict):
            merged[key] = {k: v for k, v in merged[key].items() if v is not None}
    return merged


def _merged(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _overrides(value: Any, where: str) -> dict[str, Any]:
    """A mapping of dotted settings (empty where none is given)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProfileError(f"{where}: overrides is a mapping of dotted settings, got {value!r}")
    return dict(value)


def _draws(value: Any, where: str, key: str = "label_draws") -> int:
    """A ``label_draws`` (or ``random_inits``) setting: a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProfileError(f"{where}: {key} must be a whole number >= 1, got {value!r}")
    return value


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def select(profile: Profile, seeds: int | None = None, objectives: Sequence[str] | None = None,
           tasks: Sequence[str] | None = None, label_draws: int | None = None,
           random_inits: int | None = None) -> Profile:
    """The profile restricted to its first ``seeds`` seeds (or extended: ``0 .. seeds-1``
    continue its list), some of its objectives and some of its tasks, and with ``label_draws``
    label subsets per seed below 100 % for every task and every protocol that does not set its
    own, and ``random_inits`` random-init networks likewise (a draw's subjects and a network's
    weights do not depend on how many are asked, so more of either only add runs to a folder,
    as more seeds do)."""
    changes: dict[str, Any] = {}
    if seeds is not None:
        if seeds < 1:
            raise ProfileError(f"--seeds must be >= 1, got {seeds}")
        extra = [s for s in range(seeds * 2 + max(profile.seeds) + 1) if s not in profile.seeds]
        changes["seeds"] = tuple((list(profile.seeds) + extra)[:seeds])
    for key, names in (("objectives", objectives), ("tasks", tasks)):
        if names is None:
            continue
        known = getattr(profile, key)
        missing = [n for n in names if n not in known]
        if missing:
            raise ProfileError(f"profile {profile.name!r} has no {key} {missing}; it has {', '.join(known)}")
        changes[key] = {n: known[n] for n in names}
    for key, count in (("label_draws", label_draws), ("random_inits", random_inits)):
        if count is None:
            continue
        count = _draws(count, f"--{key.replace('_', '-')}", key)
        # a task's own label draws are its baseline's and encoder protocols'; networks are a protocol's alone
        task_level = {key: count} if key == "label_draws" else {}
        changes["tasks"] = {name: replace(plan, **task_level, protocols=tuple(
            p if p.name in _protocols_setting(profile.raw, name, key) else replace(p, **{key: count})
            for p in plan.protocols)) for name, plan in changes.get("tasks", profile.tasks).items()}
    return replace(profile, **changes)


def _protocols_setting(raw: Mapping[str, Any], task: str, key: str) -> set[str]:
    """The protocols of ``task`` that set ``key`` themselves (the rest take the task's)."""
    listed = ((raw.get("tasks") or {}).get(task) or {}).get("protocols") or {}
    if not isinstance(listed, Mapping):
        return set()
    return {name for name, options in listed.items() if isinstance(options, Mapping) and key in options}
