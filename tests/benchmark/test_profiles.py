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
