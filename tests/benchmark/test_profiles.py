"""The shipped benchmark profiles are valid: a typo in one fails here, not an hour into a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ultrassl.benchmark.profile import PROFILE_DIR, load_profile
from ultrassl.models.backbones import create_backbone


@pytest.mark.parametrize("path", sorted(PROFILE_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_profile_loads_and_its_backbones_build(path):
    profile = load_profile(path)
    assert profile.seeds and profile.tasks
    assert all(config.exists() for config in profile.config_files)
    for domain in profile.domains.values():
        backbone = create_backbone(domain.backbone["name"], in_channels=domain.in_channels, **domain.backbone["kwargs"])
        assert backbone.num_features > 0
    for plan in profile.tasks.values():
        assert plan.max_steps > 0 and plan.batch_size > 0


MADE = {
    "name": "made", "seeds": [0, 1], "arms": ["pretrained", "random_init"],
    "domains": {"ultrasound": {"simulator": "fetal_sweep", "pools": {"pretrain": 2, "labelled": 4, "test": 1},
                               "in_channels": 1, "backbone": {"name": "tiny3d"}}},
    "objectives": {"order_geometry": {"domain": "ultrasound", "config": "configs/pretrain/order_geometry.yaml"}},
}


def plane_task(**options) -> dict:
    return {"plane_detection": {"domain": "ultrasound", "fractions": [0.25, 1.0], "max_steps": 10, "batch_size": 4,
                                **options}}


def test_label_draws_default_to_one_and_a_protocol_may_set_its_own():
    from ultrassl.benchmark.profile import ProfileError

    plan = load_profile({**MADE, "tasks": plane_task()}).tasks["plane_detection"]
    assert plan.label_draws == 1 and all(p.label_draws == 1 for p in plan.protocols)
    plan = load_profile({**MADE, "tasks": plane_task(label_draws=3, protocols={"linear": {}, "finetune": {
        "label_draws": 1}})}).tasks["plane_detection"]
    assert plan.label_draws == 3 and {p.name: p.label_draws for p in plan.protocols} == {"linear": 3, "finetune": 1}
    for bad in (0, -1, "3", True, 1.5):
        with pytest.raises(ProfileError, match="label_draws must be a whole number >= 1"):
            load_profile({**MADE, "tasks": plane_task(label_draws=bad)})
        with pytest.raises(ProfileError, match="protocol 'linear': label_draws"):
            load_profile({**MADE, "tasks": plane_task(protocols={"linear": {"label_draws": bad}})})


def test_more_label_draws_reach_every_protocol_but_one_that_sets_its_own():
    from ultrassl.benchmark.profile import ProfileError, select

    quick = load_profile("quick")
    chosen = select(quick, seeds=2, tasks=["plane_detection", "action_recognition"], label_draws=9)
    for name in ("plane_detection", "action_recognition"):
        plan = chosen.tasks[name]
        # the linear probes take the task's draws; the costly fine-tunes keep the one they set
        assert plan.label_draws == 9 and {p.name: p.label_draws for p in plan.protocols} == {"linear": 9, "finetune": 1}
    assert chosen.seeds == (0, 1) and chosen.raw == quick.raw  # the folder's identity does not change
    plain = load_profile({**MADE, "tasks": plane_task(label_draws=3, protocols=["linear", "finetune"])})
    assert {p.label_draws for p in select(plain, label_draws=2).tasks["plane_detection"].protocols} == {2}
    with pytest.raises(ProfileError, match="--label-draws: label_draws must be a whole number >= 1"):
        select(quick, label_draws=0)


def test_random_init_networks_are_one_by_default_and_a_protocol_may_set_its_own():
    from ultrassl.benchmark.profile import ProfileError, select

    plan = load_profile({**MADE, "tasks": plane_task()}).tasks["plane_detection"]
    assert all(p.random_inits == 1 for p in plan.protocols)
    plan = load_profile({**MADE, "tasks": plane_task(random_inits=2, protocols={"linear": {}, "finetune": {
        "random_inits": 1}})}).tasks["plane_detection"]
    assert {p.name: p.random_inits for p in plan.protocols} == {"linear": 2, "finetune": 1}
    chosen = select(load_profile({**MADE, "tasks": plane_task(protocols={"linear": {}, "finetune": {
        "random_inits": 1}})}), random_inits=4)
    assert {p.name: p.random_inits for p in chosen.tasks["plane_detection"].protocols} == {"linear": 4, "finetune": 1}
    with pytest.raises(ProfileError, match="protocol 'linear': random_inits must be a whole number >= 1"):
        load_profile({**MADE, "tasks": plane_task(protocols={"linear": {"random_inits": 0}})})
    with pytest.raises(ProfileError, match="--random-inits: random_inits must be"):
        select(load_profile("demo"), random_inits=0)


def test_a_variant_states_only_what_it_changes(tmp_path):
    import yaml

    base = {**MADE, "tasks": plane_task(overrides={"model.init_args.lr": 0.01, "trainer.max_epochs": 3})}
    base["objectives"] = {**MADE["objectives"],
                          "cvrl": {"domain": "ultrasound", "config": "configs/pretrain/cvrl.yaml"}}
    (tmp_path / "parent.yaml").write_text(yaml.safe_dump(base))
    variant = {"base": "parent.yaml", "name": "variant", "seeds": [3, 4, 5],
               "objectives": {"cvrl": None},
               "tasks": {"plane_detection": {"max_steps": 20,
                                             "overrides": {"model.init_args.lr": 0.1, "trainer.max_epochs": None}}}}
    (tmp_path / "variant.yaml").write_text(yaml.safe_dump(variant))
    profile = load_profile(tmp_path / "variant.yaml")

    assert profile.name == "variant" and profile.seeds == (3, 4, 5)        # a list replaces the base's
    assert list(profile.objectives) == ["order_geometry"]                  # null drops a named entry
    plan = profile.tasks["plane_detection"]
    assert plan.max_steps == 20 and plan.batch_size == 4                   # mappings merge key by key
    assert [p.fractions for p in plan.protocols] == [(0.25, 1.0)] * len(plan.protocols)
    # an override set to null is a setting, not a removal
    assert plan.overrides == {"model.init_args.lr": 0.1, "trainer.max_epochs": None}
    assert "base" not in profile.raw and profile.domains == load_profile(base).domains


def test_the_reversed_motion_profile_is_the_motion_profile_but_for_its_objective():
    motion, reversed_ = load_profile("motion"), load_profile("motion_reversed")
    assert list(reversed_.objectives) == ["vtdl_natural_reversed"]
    objective = reversed_.objectives["vtdl_natural_reversed"]
    assert objective.config == motion.objectives["vtdl_natural"].config
    assert objective.overrides == {**motion.objectives["vtdl_natural"].overrides,
                                   "model.init_args.reversed_negative": True}
    assert (reversed_.seeds, reversed_.arms, reversed_.domains, reversed_.tasks) == \
        (motion.seeds, motion.arms, motion.domains, motion.tasks)


def test_the_planes_profile_is_the_demo_with_same_frame_cvrl_beside_its_objective():
    demo, planes = load_profile("demo"), load_profile("planes")
    assert list(planes.objectives) == ["order_geometry", "cvrl_same_frame"]
    assert planes.objectives["order_geometry"] == demo.objectives["order_geometry"]
    assert planes.objectives["cvrl_same_frame"].overrides["data.init_args.pipeline.init_args.max_gap"] == 0
    assert (planes.arms, planes.domains, planes.tasks) == (demo.arms, demo.domains, demo.tasks)
    assert planes.seeds == (0, 1, 2) and not planes.save_models


def test_a_base_that_is_missing_or_circular_is_refused(tmp_path):
    import yaml

    from ultrassl.benchmark.profile import ProfileError

    with pytest.raises(ProfileError, match="no_such_profile: no such profile"):
        load_profile({**MADE, "tasks": plane_task(), "base": "no_such_profile"})
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"base": "b.yaml", "name": "a"}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"base": "a.yaml", "name": "b"}))
    with pytest.raises(ProfileError, match=r"a\.yaml: profiles name each other as base in a cycle: .*a\.yaml -> "
                                           r".*b\.yaml -> .*a\.yaml"):
        load_profile(tmp_path / "a.yaml")
    with pytest.raises(ProfileError, match="base names a profile"):
        load_profile({**MADE, "tasks": plane_task(), "base": 3})


@pytest.mark.parametrize("path", sorted(PROFILE_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_no_shipped_cate_encodes_an_augmentation_its_profile_turns_off(path):
    """A token of an augmentation that never happens is one constant (``val/flip_token_std``
    0.000): it tells the head nothing, and its metric never moves."""
    import inspect

    import yaml

    from ultrassl.benchmark.runner import pretrain_settings
    from ultrassl.models.checkpoint import import_class

    profile = load_profile(path)
    for objective in profile.objectives.values():
        config = yaml.safe_load(objective.config.read_text())
        if not config["model"]["class_path"].endswith(".CATE"):
            continue
        settings = pretrain_settings(profile, objective)
        tokens = settings.get("model.init_args.tokens", config["model"]["init_args"]["tokens"])
        pipeline = config["data"]["init_args"]["pipeline"]
        # the pipeline's own default; a pipeline that passes **kwargs on takes its parent's
        signatures = (inspect.signature(cls.__init__).parameters for cls in import_class(pipeline["class_path"]).__mro__)
        default = next(p["flip_prob"].default for p in signatures if "flip_prob" in p)
        flip_prob = settings.get("data.init_args.pipeline.init_args.flip_prob",
                                 pipeline.get("init_args", {}).get("flip_prob", default))
        assert not (flip_prob == 0 and "flip" in tokens), f"{profile.name}: {objective.name} encodes flips it never sees"


def test_a_profiles_trainer_options_reach_every_trained_run_before_its_own_overrides(tmp_path):
    """``trainer`` reaches each pretraining and each arm; a domain's or task's override wins."""
    from types import SimpleNamespace

    import yaml

    from ultrassl.benchmark.runner import Runner
    from ultrassl.models.encoders import RandomEncoder

    raw = yaml.safe_load((Path(__file__).with_name("tiny.yaml")).read_text())
    raw["trainer"] = {"precision": "bf16-mixed", "gradient_clip_val": 1.0}
    raw["tasks"]["plane_detection"]["overrides"]["trainer.gradient_clip_val"] = 0.5
    profile = load_profile(raw)
    runner = Runner(profile, tmp_path)
    runner.data = {"ultrasound": SimpleNamespace(pretrain_manifest=tmp_path / "pretrain.csv",
                                                 labelled={0: {1.0: [tmp_path / "labelled.csv"]}})}
    args = runner.pretrain_args(profile.objectives["order_geometry"], 0, tmp_path / "run")
    assert "--trainer.precision=bf16-mixed" in args and "--trainer.gradient_clip_val=1.0" in args
    assert "--trainer.max_steps=2" in args  # the budget stays the domain's
    encoder = RandomEncoder("tiny3d", {"channels": [4, 8, 8]}, 1, seed=0)
    cfg = runner.arm_cfg(profile.tasks["plane_detection"], encoder, "finetune", 0, 1.0, 2, 4)
    assert cfg["trainer"]["precision"] == "bf16-mixed" and cfg["trainer"]["gradient_clip_val"] == 0.5
    assert cfg["trainer"]["max_steps"] == 2


def test_the_benchmark_keeps_its_own_trainer_options(tmp_path):
    from ultrassl.benchmark.profile import ProfileError

    with pytest.raises(ProfileError, match="trainer: max_steps are set by the benchmark"):
        load_profile({**MADE, "tasks": plane_task(), "trainer": {"max_steps": 10}})
    with pytest.raises(ProfileError, match="trainer is a mapping"):
        load_profile({**MADE, "tasks": plane_task(), "trainer": ["gpu"]})


def test_the_full_profile_trains_every_run_on_the_gpu_in_bf16():
    assert load_profile("full").trainer == {"accelerator": "gpu", "precision": "bf16-mixed"}


AFFINE = "data.init_args.pipeline.init_args.affine_prob"


def _setting(cfg: dict, dotted: str):
    node = cfg
    for key in dotted.split("."):
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return node if node != {} else None


def _captured_runs(profile, tmp_path):
    """Every config one seed of the plane task would run, by (unit, protocol, arm), without
    training anything."""
    from types import SimpleNamespace

    from ultrassl.benchmark.runner import Runner

    runner = Runner(profile, tmp_path)
    plan = profile.tasks["plane_detection"]
    labelled = {0: {f: [tmp_path / f"labelled_{f}_{d}.csv" for d in range(1 if f == 1 else plan.label_draws)]
                    for f in plan.fractions}}
    runner.data = {"ultrasound": SimpleNamespace(labelled=labelled,
                                                 draws=lambda fraction, wanted: min(wanted, len(labelled[0][fraction])))}
    runs: list[tuple[str, str, str, dict]] = []
    runner.train_and_score = lambda task, cfg, folder, keys, save_model: (
        runs.append(("train", keys["protocol"], keys["arm"] + (f"_net{keys['network']}" if keys.get("network") else ""),
                     cfg)) or {})
    runner.baseline = lambda task, cfg, folder, keys: runs.append(("baseline", "", keys["arm"], cfg))
    runner.score_encoder = lambda protocol, options, cfg, folder, keys: runs.append(("encoder", protocol, keys["arm"], cfg))
    runner.run_task(plan, 0, {})
    return runs


def test_a_protocols_overrides_reach_its_runs_and_the_ceiling_and_nothing_else(tmp_path):
    """Training augmentation for the fine-tunes only: the linear probes and the raw-pixel
    baseline read unwarped frames; the ceiling, a fine-tune, takes it, then its own overrides."""
    profile = load_profile({**MADE, "arms": ["random_init", "supervised", "baseline"], "tasks": plane_task(
        fractions=[0.5, 1.0], label_draws=2, overrides={"model.init_args.probe_passes": 1},
        protocols={"linear": {}, "finetune": {"fractions": [0.5], "overrides": {AFFINE: 0.8, "model.init_args.lr": 0.003}}},
        ceiling={"max_steps": 30, "overrides": {"model.init_args.lr": 0.01}})})
    runs = _captured_runs(profile, tmp_path)
    kinds = {(unit, protocol, arm) for unit, protocol, arm, _ in runs}
    assert kinds == {("train", "finetune", "supervised"), ("train", "linear", "random_init"),
                     ("train", "finetune", "random_init"), ("baseline", "", "baseline")}
    for unit, protocol, arm, cfg in runs:
        assert _setting(cfg, "model.init_args.probe_passes") == 1          # the task's, every run
        if arm == "supervised":
            assert _setting(cfg, AFFINE) == 0.8 and _setting(cfg, "model.init_args.lr") == 0.01
            assert cfg["trainer"]["max_steps"] == 30
        elif protocol == "finetune":
            assert _setting(cfg, AFFINE) == 0.8 and _setting(cfg, "model.init_args.lr") == 0.003
        else:
            assert not _setting(cfg, AFFINE) and _setting(cfg, "model.init_args.lr") not in (0.003, 0.01)
    # two label draws at 50 % for each protocol, one at 100 % for the probe
    assert sum(1 for unit, protocol, *_ in runs if (unit, protocol) == ("train", "finetune")) == 1 + 2
    assert sum(1 for unit, protocol, *_ in runs if (unit, protocol) == ("train", "linear")) == 3


def test_a_protocol_or_ceiling_setting_the_profile_does_not_know_is_refused():
    from ultrassl.benchmark.profile import ProfileError

    with pytest.raises(ProfileError, match=r"protocol 'finetune' takes fractions, .*overrides; got \['lr'\]"):
        load_profile({**MADE, "tasks": plane_task(protocols={"finetune": {"lr": 0.1}})})
    with pytest.raises(ProfileError, match="protocol 'linear': overrides is a mapping"):
        load_profile({**MADE, "tasks": plane_task(protocols={"linear": {"overrides": [AFFINE]}})})
    with pytest.raises(ProfileError, match="ceiling: overrides is a mapping"):
        load_profile({**MADE, "tasks": plane_task(ceiling={"overrides": "lr"})})
    plan = load_profile({**MADE, "tasks": plane_task(ceiling={"overrides": {AFFINE: 0.5}})}).tasks["plane_detection"]
    assert plan.ceiling_overrides == {AFFINE: 0.5}        # a task without a fine-tune protocol


def test_the_quick_profiles_sweeps_order_geometry_and_plane_probes_are_the_demos(tmp_path):
    """The demo is the quick profile's slice: what its claim rests on is the same there."""
    demo, quick = load_profile("demo"), load_profile("quick")
    assert quick.domains["ultrasound"] == demo.domains["ultrasound"]
    assert quick.objectives["order_geometry"] == demo.objectives["order_geometry"]
    assert quick.seeds == demo.seeds
    runs = {profile.name: {(unit, protocol, arm): cfg for unit, protocol, arm, cfg in _captured_runs(
                load_profile({**profile.raw, "arms": ["random_init", "supervised", "baseline"]}), tmp_path)}
            for profile in (demo, quick)}
    for run in (("train", "linear", "random_init"), ("baseline", "", "baseline")):
        for cfg in (runs["demo"][run], runs["quick"][run]):
            cfg["trainer"].pop("max_steps")        # a solved probe takes no steps
        assert runs["quick"][run] == runs["demo"][run]
    # the quick profile averages random init over three networks, the first the demo's: they
    # differ in their weights' seed alone
    first = runs["quick"][("train", "linear", "random_init")]
    others = [runs["quick"][("train", "linear", f"random_init_net{k}")] for k in (1, 2)]
    assert ("train", "linear", "random_init_net1") not in runs["demo"]
    for cfg in others:
        cfg["trainer"].pop("max_steps")
    seeds = [cfg["model"]["init_args"]["encoder"]["init_args"].pop("seed") for cfg in (first, *others)]
    assert seeds[0] == 0 and len(set(seeds)) == 3 and others == [first, first]
    ceiling = runs["quick"][("train", "finetune", "supervised")]
    assert _setting(ceiling, AFFINE) == 0.8 and ceiling["trainer"]["max_steps"] == 1000
