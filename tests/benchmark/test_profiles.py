"""The shipped benchmark profiles are valid: a typo in one fails here, not an hour into a run."""

from __future__ import annotations

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
