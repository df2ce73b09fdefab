"""The transfer benchmark's runs: pretraining, every arm of every comparison, the baselines.

For each seed of the profile:

1. every objective pretrains on its domain's pretrain pool through ``ultrassl fit``
   (:class:`~ultrassl.engine.cli.UltrasslCLI`) with the profile's overrides: the pool's
   manifest, ``seed_everything``, ``trainer.max_steps``, ``trainer.default_root_dir``, the
   domain's backbone and input size; its last checkpoint (the fixed budget, not the best
   epoch) is what transfers;
2. for each task: the supervised ceiling (random init fine-tuned on every labelled subject
   with the task's fine-tune budget), then for each protocol and label fraction the
   comparison: one arm per objective (:class:`~ultrassl.models.encoders.PretrainedEncoder`)
   and random init (:class:`~ultrassl.models.encoders.RandomEncoder` of the same backbone and
   seed), all through :func:`~ultrassl.downstream.arms.arm_config` /
   :func:`~ultrassl.downstream.arms.train_arm` / the task's ``score`` with one budget, one
   manifest and one seed; the task's model-free baseline (``Task.baseline``) on the same
   labels; and the task's encoder protocols (kNN retrieval) for every encoder, the ceiling's
   among them. Below 100 % of the labels each of these runs once per label draw of the seed
   (the profile's ``label_draws``), every arm on the same draws. Random init may run several
   networks per seed and draw (the protocol's ``random_inits``), which the report averages:
   a random network's features vary with its weights more than a pretrained one's do.

Every finished unit leaves a record (:mod:`ultrassl.benchmark.store`); a rerun skips it.
Two units with the same resolved arm config (random init fine-tuned on 100 % of the labels
and the ceiling) are trained once. Nothing here knows a task by name: what differs between
tasks is the tasks' (:mod:`ultrassl.downstream.tasks`) and the profile's.
"""

from __future__ import annotations

import gc
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ultrassl.benchmark.pools import DomainData, data_folder, draw_tag, fraction_tag, simulate_domain, write_manifests
from ultrassl.benchmark.profile import Domain, Objective, Profile, TaskPlan
from ultrassl.benchmark.store import claim_folder, read_json, write_json
from ultrassl.data.manifest import manifest_hash
from ultrassl.downstream.arms import arm_config, build_arm, load_config, solves_probe, train_arm
from ultrassl.downstream.protocols import ENCODER_PROTOCOLS
from ultrassl.downstream.tasks import get_task
from ultrassl.engine.quiet import quiet_lightning
from ultrassl.models.encoders import EncoderSpec, PretrainedEncoder, RandomEncoder
from ultrassl.plain import plain

#: the record file of every finished unit
RECORD = "record.json"
#: arm names that are not objectives
RANDOM, SUPERVISED, BASELINE = "random_init", "supervised", "baseline"


def cli_value(value: Any) -> str:
    """A value as ``ultrassl fit`` reads it on the command line (YAML; strings as they are)."""
    return value if isinstance(value, str) else json.dumps(plain(value))


def trainer_settings(trainer: Mapping[str, Any] | None) -> dict[str, Any]:
    """A profile's ``trainer`` options as dotted settings of a run's config."""
    return {f"trainer.{key}": value for key, value in (trainer or {}).items()}


def pretrain_settings(profile: Profile, objective: Objective) -> dict[str, Any]:
    """The dotted settings a profile gives an objective's pretraining over its config: the
    profile's ``trainer`` options, the domain's input size and budget, then the domain's
    overrides, then the objective's."""
    domain = profile.domains[objective.domain]
    settings: dict[str, Any] = trainer_settings(profile.trainer)
    if domain.size is not None:
        settings["data.init_args.pipeline.init_args.size"] = domain.size
    if domain.pretrain_max_steps is not None:
        settings["trainer.max_steps"] = domain.pretrain_max_steps
        settings["trainer.max_epochs"] = -1  # the steps decide
    if domain.pretrain_batch_size is not None:
        settings["data.init_args.batch_size"] = domain.pretrain_batch_size
    settings.update(domain.pretrain_overrides)
    settings.update(objective.overrides)
    return settings


def config_digest(cfg: Mapping[str, Any]) -> str:
    """SHA-256 of an arm config: equal digests, identical runs."""
    return hashlib.sha256(json.dumps(plain(cfg), sort_keys=True).encode()).hexdigest()


def baseline_digest(cfg: Mapping[str, Any]) -> str:
    """SHA-256 of what a model-free baseline depends on: the arm config without its seeds and
    encoder, and the bytes of its labelled manifest instead of the manifest's path. A task's
    baseline is a function of its data and config (:meth:`ultrassl.downstream.task.Task.baseline`),
    so equal digests give equal baselines whatever the seed."""
    reduced = json.loads(json.dumps(plain(cfg)))
    reduced.pop("seed_everything", None)
    data = reduced.get("data", {}).get("init_args", {})
    data.pop("seed", None)
    data["manifest"] = manifest_hash(data["manifest"])
    (reduced.get("model", {}).get("init_args") or {}).pop("encoder", None)
    return hashlib.sha256(json.dumps(reduced, sort_keys=True).encode()).hexdigest()


def _quiet(_: str) -> None:
    pass


@dataclass
class Runner:
    """Runs a profile into an output folder (see the module docstring).

    Attributes:
        profile: what to run.
        out: the output folder.
        sim_seed: the simulator's seed (the data and the pools).
        log: where progress lines go.
        progress: show Lightning's progress bars.
    """

    profile: Profile
    out: Path
    sim_seed: int = 0
    log: Callable[[str], None] = print
    progress: bool = False
    data: dict[str, DomainData] = field(default_factory=dict)
    trained: int = 0
    reused: int = 0

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self._digests: dict[str, Path] | None = None
        # the baselines computed in this run by baseline_digest: at 100 % of the labels every
        # seed trains on the same subjects, and its baseline need not be computed again
        self._baselines: dict[str, tuple[dict[str, Any], Mapping[str, Any]]] = {}

    # ----------------------------------------------------------------- the whole run
    def run(self, on_seed_done: Callable[[Runner], None] | None = None) -> None:
        """Everything the profile asks for; ``on_seed_done(self)`` after each seed (the report)."""
        self.prepare_data()
        for seed in self.profile.seeds:
            self.log(f"[seed {seed}] pretraining {len(self.profile.objectives_of_tasks())} objective(s)"
                     if self.profile.objectives_of_tasks() else f"[seed {seed}]")
            checkpoints = {o.name: self.pretrain(o, seed) for o in self.profile.objectives_of_tasks()}
            for plan in self.profile.tasks.values():
                self.run_task(plan, seed, checkpoints)
            if on_seed_done is not None:
                on_seed_done(self)

    def prepare_data(self) -> None:
        """Simulate and index each used domain once, split it into pools, write the manifests
        (in a folder that is new or holds this very benchmark: :func:`claim_folder`)."""
        self.out.mkdir(parents=True, exist_ok=True)
        claim_folder(self.out, {**self.profile.identity(), "sim_seed": int(self.sim_seed)})
        for name in self.profile.used_domains():
            domain = self.profile.domains[name]
            manifest = simulate_domain(domain, self.data_folder(name), self.sim_seed, self.log)
            plans = [t for t in self.profile.tasks.values() if t.domain == name]
            fractions = sorted({f for t in plans for f in t.fractions} | {1.0})
            draws = max([t.label_draws for t in plans] + [p.label_draws for t in plans for p in t.protocols])
            self.data[name] = write_manifests(manifest, domain.pools, self.sim_seed, self.profile.seeds, fractions,
                                              draws)
            write_json(self.data_folder(name) / "pools.json", self.data[name].record())
            pools = self.data[name].pools
            self.log(f"      {name}: {len(pools.pretrain)} pretraining, {len(pools.labelled)} labelled and "
                     f"{len(pools.test)} test subjects")

    def data_folder(self, domain: str) -> Path:
        return data_folder(self.out, self.profile.domains[domain])

    # ----------------------------------------------------------------- pretraining
    def pretrain_args(self, objective: Objective, seed: int, folder: Path) -> list[str]:
        """The ``ultrassl fit`` arguments of one pretraining."""
        domain = self.profile.domains[objective.domain]
        manifest = self.data[objective.domain].pretrain_manifest
        if manifest is None:
            raise ValueError(f"objective {objective.name!r}: the {objective.domain} domain has no pretrain pool")
        settings: dict[str, Any] = {
            "data.init_args.manifest": str(manifest),
            "data.init_args.split_column": "split", "data.init_args.train_split": "train",
            "data.init_args.val_split": "val",
            "model.init_args.backbone": domain.backbone["name"],
            "model.init_args.backbone_kwargs": domain.backbone["kwargs"],
            "data.init_args.pipeline.init_args.in_channels": domain.in_channels,
            "trainer.default_root_dir": str(folder),
            "trainer.enable_progress_bar": self.progress,
            "trainer.enable_model_summary": self.progress,
        }
        settings.update(pretrain_settings(self.profile, objective))
        return ["fit", "-c", str(objective.config), f"--seed_everything={int(seed)}",
                *[f"--{key}={cli_value(value)}" for key, value in settings.items()]]

    def pretrain(self, objective: Objective, seed: int) -> dict[str, Any]:
        """Pretrain ``objective`` with ``seed`` (or read the record of a finished run)."""
        from ultrassl.engine.cli import UltrasslCLI

        folder = self.out / "pretrain" / objective.name / f"seed{seed}"
        record = read_json(folder / RECORD)
        if record is not None and Path(record["checkpoint"]).is_file():
            self.log(f"      {objective.name}: reusing {record['checkpoint']}")
            self.reused += 1
            return record
        if folder.exists():  # an interrupted run: start it again from nothing
            shutil.rmtree(folder)
        args = self.pretrain_args(objective, seed, folder)
        self.log(f"      {objective.name}: ultrassl {' '.join(args)}")
        started = time.perf_counter()
        with quiet_lightning(info=self.progress):
            cli = UltrasslCLI(args=args)
        seconds = time.perf_counter() - started
        trainer, summary = cli.trainer, cli.summary
        data = cli.datamodule
        checkpoint = summary["last_checkpoint"]
        info = PretrainedEncoder(checkpoint).describe()
        self.check_backbone(objective.domain, info.spec, f"objective {objective.name!r}")
        record = {
            "kind": "pretrain", "objective": objective.name, "domain": objective.domain, "seed": int(seed),
            "checkpoint": checkpoint, "best_checkpoint": summary["checkpoint"], "logs": summary["logs"],
            "seconds": seconds, "steps": int(trainer.global_step), "epochs": int(trainer.current_epoch),
            "val_metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")},
            "order_classes": getattr(cli.model, "num_order_classes", None),
            "budget": {"max_steps": trainer.max_steps, "batch_size": data.batch_size,
                       "manifest_sha256": manifest_hash(data.manifest),
                       "train_subjects": self.data[objective.domain].pools.pretrain},
            "backbone": {"name": info.spec.name, "kwargs": info.spec.kwargs, "in_channels": info.spec.in_channels},
            "command": "ultrassl " + " ".join(args),
        }
        del cli, trainer, data
        gc.collect()
        write_json(folder / RECORD, record)
        self.trained += 1
        self.log(f"      {objective.name}: {record['steps']} steps in {seconds:.0f} s; "
                 + ", ".join(f"{k} {v:.3f}" for k, v in record["val_metrics"].items()))
        return record

    def check_backbone(self, domain: str, spec: Any, what: str) -> None:
        """Every arm of a domain has the domain's backbone: a config that overrides it is an error."""
        wanted = self.profile.domains[domain]
        have = (spec.name, plain(spec.kwargs), spec.in_channels)
        want = (wanted.backbone["name"], plain(wanted.backbone["kwargs"]), wanted.in_channels)
        if have != want:
            raise ValueError(f"{what} built backbone {have} but the {domain} domain's arms share {want}; "
                             "remove the objective's own backbone override")

    # ----------------------------------------------------------------- downstream
    def random_encoder(self, domain: Domain, seed: int) -> RandomEncoder:
        return RandomEncoder(domain.backbone["name"], domain.backbone["kwargs"], domain.in_channels, seed=seed)

    def with_random_inits(self, encoders: Mapping[str, EncoderSpec], plan: TaskPlan, seed: int,
                          networks: int) -> list[tuple[str, EncoderSpec, int]]:
        """(arm, encoder, network) of a comparison's runs: each encoder once, random init on
        ``networks`` networks, each with its own weights (:func:`random_init_seed`)."""
        found = []
        for name, encoder in encoders.items():
            found.append((name, encoder, 0))
            if name == RANDOM:
                domain = self.profile.domains[plan.domain]
                found += [(name, self.random_encoder(domain, random_init_seed(seed, k)), k) for k in range(1, networks)]
        return found

    def arm_cfg(self, plan: TaskPlan, encoder: EncoderSpec, protocol: str, seed: int, fraction: float,
                max_steps: int | None, batch_size: int, draw: int = 0,
                own_overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The config of one arm: the task config, the encoder, the labelled manifest of the
        fraction, seed and label draw, the budget, the profile's trainer options, the domain's
        input size, the task's overrides and then ``own_overrides`` (the protocol's, or the
        ceiling's)."""
        domain = self.profile.domains[plan.domain]
        overrides: dict[str, Any] = {"data.init_args.split_column": "split", "data.init_args.train_split": "train",
                                     "data.init_args.val_split": "val", **trainer_settings(self.profile.trainer)}
        if domain.size is not None:
            overrides["data.init_args.pipeline.init_args.size"] = domain.size
        overrides.update(plan.overrides)
        overrides.update(own_overrides or {})
        manifest = self.data[plan.domain].labelled[seed][fraction][draw]
        return arm_config(load_config(plan.config), encoder, protocol, seed=seed, manifest=manifest,
                          max_steps=max_steps, batch_size=batch_size, overrides=overrides)

    def encoders(self, plan: TaskPlan, seed: int, checkpoints: Mapping[str, Mapping[str, Any]]) -> dict[str, EncoderSpec]:
        """The encoder arms of a comparison, in column order: each objective of the task's
        domain, then random init."""
        found: dict[str, EncoderSpec] = {o.name: PretrainedEncoder(checkpoints[o.name]["checkpoint"])
                                         for o in self.profile.objectives_of(plan.domain)}
        if RANDOM in self.profile.arms:
            found[RANDOM] = self.random_encoder(self.profile.domains[plan.domain], seed)
        return found

    def run_task(self, plan: TaskPlan, seed: int, checkpoints: Mapping[str, Mapping[str, Any]]) -> None:
        task = get_task(plan.name)
        root = self.out / "runs" / plan.name
        encoders = self.encoders(plan, seed, checkpoints)
        supervised = None
        if SUPERVISED in self.profile.arms:
            cfg = self.arm_cfg(plan, self.random_encoder(self.profile.domains[plan.domain], seed), "finetune", seed,
                               1.0, plan.max_steps, plan.batch_size, own_overrides=plan.ceiling_overrides)
            supervised = self.train_and_score(task, cfg, root / SUPERVISED / f"seed{seed}",
                                              {"task": plan.name, "protocol": "finetune", "fraction": 1.0,
                                               "seed": seed, "arm": SUPERVISED}, save_model=True)
        data = self.data[plan.domain]
        for protocol in plan.protocols:
            for fraction in protocol.fractions:
                for draw in range(data.draws(fraction, protocol.label_draws)):
                    for name, encoder, network in self.with_random_inits(encoders, plan, seed, protocol.random_inits):
                        cfg = self.arm_cfg(plan, encoder, protocol.name, seed, fraction, protocol.max_steps,
                                           protocol.batch_size, draw, own_overrides=protocol.overrides)
                        self.train_and_score(task, cfg, root / protocol.name / fraction_tag(fraction)
                                             / f"seed{seed}{draw_tag(draw)}" / f"{name}{network_tag(network)}",
                                             {"task": plan.name, "protocol": protocol.name, "fraction": fraction,
                                              "seed": seed, "draw": draw, "arm": name,
                                              **({"network": network} if network else {})},
                                             save_model=self.profile.save_models)
        first = plan.protocols[0]
        scored = dict(encoders)  # the encoder protocols score the ceiling's encoder too
        if supervised is not None and supervised.get("model"):
            scored[SUPERVISED] = PretrainedEncoder(supervised["model"])
        for fraction in plan.fractions:
            for draw in range(data.draws(fraction, plan.label_draws)):
                where = f"seed{seed}{draw_tag(draw)}"
                if BASELINE in self.profile.arms:
                    cfg = self.arm_cfg(plan, self.random_encoder(self.profile.domains[plan.domain], seed), first.name,
                                       seed, fraction, first.max_steps, first.batch_size, draw,
                                       own_overrides=first.overrides)
                    self.baseline(task, cfg, root / BASELINE / fraction_tag(fraction) / where,
                                  {"task": plan.name, "fraction": fraction, "seed": seed, "draw": draw,
                                   "arm": BASELINE})
                for protocol in task.encoder_protocols:
                    options = plan.encoder_protocols.get(protocol, {})
                    for name, encoder in scored.items():
                        cfg = self.arm_cfg(plan, encoder, first.name, seed, fraction, None, first.batch_size, draw,
                                           own_overrides=first.overrides)
                        self.score_encoder(protocol, options, cfg, root / protocol / fraction_tag(fraction) / where / name,
                                           {"task": plan.name, "protocol": protocol, "fraction": fraction,
                                            "seed": seed, "draw": draw, "arm": name})

    # ----------------------------------------------------------------- units of work
    def _digest_index(self) -> dict[str, Path]:
        if self._digests is None:
            self._digests = {}
            for path in sorted((self.out / "runs").rglob(RECORD)) if (self.out / "runs").exists() else []:
                record = read_json(path)
                if record and record.get("config_sha256") and not record.get("same_run_as"):
                    self._digests.setdefault(record["config_sha256"], path)
        return self._digests

    def train_and_score(self, task: Any, cfg: dict[str, Any], folder: Path, keys: Mapping[str, Any],
                        save_model: bool) -> dict[str, Any]:
        """Train one arm and score it (or read its record; or copy the record of an identical run)."""
        if (done := self._finished(folder)) is not None:
            return done
        digest = config_digest(cfg)
        twin = self._digest_index().get(digest)
        if twin is not None and twin.parent != folder and (record := read_json(twin)) is not None:
            record = {**record, **keys, "same_run_as": str(twin.parent.relative_to(self.out))}
            write_json(folder / RECORD, record)
            self.log(f"      {self._name(keys)}: the same run as {record['same_run_as']}")
            self.reused += 1
            return record
        if folder.exists():
            shutil.rmtree(folder)
        self.log(f"      {self._name(keys)}: " + ("solving the linear probe (L-BFGS)" if solves_probe(cfg)
                                                  else f"training {cfg['trainer'].get('max_steps')} steps"))
        arm = train_arm(cfg, folder, self.progress, save_model)
        started = time.perf_counter()
        scored = task.score(arm.model, arm.datamodule)
        scoring = time.perf_counter() - started
        run = arm.run
        record = {
            "kind": "arm", **keys, "metrics": scored["metrics"], "per_class": task.class_scores(scored),
            "budget": budget_of(cfg, arm.datamodule, run["steps"]), "encoder": cfg["model"]["init_args"]["encoder"],
            "seconds": run["seconds"] + scoring, "training_seconds": run["seconds"], "scoring_seconds": scoring,
            "probe": {k: run[key][k] for key in ("probe", "head_from_probe") if key in run
                      for k in ("samples", "iterations", "converged")} or None,
            "config_sha256": digest,
        }
        if save_model:
            record["model"] = run["model"]
        del arm
        gc.collect()
        write_json(folder / RECORD, record)
        self._digest_index().setdefault(digest, folder / RECORD)
        self.trained += 1
        self.log(f"      {self._name(keys)}: " + ", ".join(f"{k} {_number(v)}" for k, v in scored["metrics"].items())
                 + f"  ({record['seconds']:.0f} s)")
        return record

    def baseline(self, task: Any, cfg: dict[str, Any], folder: Path, keys: Mapping[str, Any]) -> dict[str, Any] | None:
        """The task's model-free baseline on the labels of one fraction and seed."""
        if (done := self._finished(folder)) is not None:
            return done
        started = time.perf_counter()
        arm = build_arm(cfg)
        digest = baseline_digest(cfg)
        if digest in self._baselines:
            reference, computed_for = self._baselines[digest]
        else:
            reference, computed_for = task.baseline(arm.datamodule, arm.config), None
            if reference is None:
                return None
            self._baselines[digest] = (reference, {k: keys[k] for k in ("seed", "draw") if k in keys})
        record = {"kind": "baseline", **keys, "name": reference["name"], "metrics": reference["metrics"],
                  "per_class": task.class_scores(reference), "budget": budget_of(cfg, arm.datamodule, 0),
                  "seconds": time.perf_counter() - started}
        if computed_for is not None:
            record["same_as"] = computed_for  # same labelled subjects and config: the same baseline
        write_json(folder / RECORD, record)
        self.trained += 1
        self.log(f"      {self._name(keys)} ({reference['name']}): "
                 + ", ".join(f"{k} {_number(v)}" for k, v in reference["metrics"].items()))
        return record

    def score_encoder(self, protocol: str, options: Mapping[str, Any], cfg: dict[str, Any], folder: Path,
                      keys: Mapping[str, Any]) -> dict[str, Any]:
        """An encoder protocol (kNN retrieval) on the encoder as it starts."""
        if (done := self._finished(folder)) is not None:
            return done
        started = time.perf_counter()
        arm = build_arm(cfg)
        scored = ENCODER_PROTOCOLS[protocol](**options).evaluate(arm.model, arm.datamodule)
        record = {"kind": "encoder_protocol", **keys, "metrics": scored["metrics"], "per_class": None,
                  "budget": budget_of(cfg, arm.datamodule, 0), "encoder": cfg["model"]["init_args"]["encoder"],
                  "seconds": time.perf_counter() - started}
        write_json(folder / RECORD, record)
        self.trained += 1
        self.log(f"      {self._name(keys)}: " + ", ".join(f"{k} {_number(v)}" for k, v in scored["metrics"].items()))
        return record

    def _finished(self, folder: Path) -> dict[str, Any] | None:
        """The record of a run finished in ``folder`` earlier (counted as reused), else None."""
        done = read_json(folder / RECORD)
        if done is not None:
            self.reused += 1
        return done

    @staticmethod
    def _name(keys: Mapping[str, Any]) -> str:
        parts = [keys["task"], keys.get("protocol"), f"{float(keys['fraction']) * 100:g}%", f"seed {keys['seed']}",
                 f"label draw {keys['draw']}" if keys.get("draw") else None,
                 keys["arm"] + (f" (network {keys['network']})" if keys.get("network") else "")]
        return " / ".join(str(p) for p in parts if p is not None)


def random_init_seed(seed: int, network: int) -> int:
    """The initialisation seed of a seed's random-init network ``network``: the seed itself for
    the first (a profile with one network per seed runs exactly that one), then a number drawn
    from (seed, network), far from any seed a profile lists."""
    if network < 0:
        raise ValueError(f"a random-init network is numbered from 0, got {network}")
    return int(seed) if network == 0 else int(np.random.SeedSequence([int(seed), int(network)]).generate_state(1)[0])


def network_tag(network: int) -> str:
    """The suffix of a random-init network's run folder: ``""`` for the first, ``"_net<k>"`` else."""
    return f"_net{int(network)}" if network else ""


def budget_of(cfg: Mapping[str, Any], datamodule: Any, steps_run: int) -> dict[str, Any]:
    """What an arm was given: steps, batch, seeds and exactly which data (the manifest's
    SHA-256 and the training and held-out subjects). Arms of one comparison must agree."""
    data = cfg["data"]["init_args"]
    train, held_out = datamodule.split_tables()
    subjects = (lambda table: sorted(set(table["subject"].astype(str))) if table is not None else [])
    return {
        "protocol": cfg["model"]["init_args"].get("protocol"),
        "max_steps": cfg.get("trainer", {}).get("max_steps"),
        "steps_run": int(steps_run),
        "batch_size": data.get("batch_size"),
        "seed": cfg.get("seed_everything"),
        "data_seed": data.get("seed"),
        "manifest_sha256": manifest_hash(data["manifest"]),
        "train_subjects": subjects(train),
        "held_out_subjects": subjects(held_out),
        "train_videos": len(train),
    }


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.4f}"
