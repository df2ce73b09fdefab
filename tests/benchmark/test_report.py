"""The report's checks on constructed records: a constant or missing metric and unequal
budgets are defects; the tables say mean [low, high] and bold what excludes 0."""

from __future__ import annotations

import pytest

from ultrassl.benchmark.profile import load_profile
from ultrassl.benchmark.report import budget_checks, task_results
from ultrassl.benchmark.store import FolderMismatchError, claim_folder, read_json, write_json

PROFILE = {
    "name": "made", "seeds": [0, 1, 2], "arms": ["pretrained", "random_init"],
    "domains": {"ultrasound": {"simulator": "fetal_sweep", "pools": {"pretrain": 2, "labelled": 2, "test": 1},
                               "in_channels": 1, "backbone": {"name": "tiny3d"}}},
    "objectives": {"order_geometry": {"domain": "ultrasound", "config": "configs/pretrain/order_geometry.yaml"}},
    "tasks": {"plane_detection": {"domain": "ultrasound", "protocols": ["linear"], "fractions": [1.0],
                                  "max_steps": 10, "batch_size": 4}},
}
BUDGET = {"protocol": "linear", "max_steps": 10, "steps_run": 0, "batch_size": 4, "seed": 0, "data_seed": 0,
          "manifest_sha256": "abc", "train_subjects": ["S001"], "held_out_subjects": ["S002"], "train_videos": 3}


def record(arm: str, seed: int, metrics: dict, **budget) -> dict:
    return {"kind": "arm", "task": "plane_detection", "protocol": "linear", "fraction": 1.0, "seed": seed, "arm": arm,
            "metrics": metrics, "per_class": None, "budget": {**BUDGET, "seed": seed, **budget}}


def results_of(records: list[dict]) -> dict:
    profile = load_profile(PROFILE)
    return task_results(profile, profile.tasks["plane_detection"], records)


def test_a_metric_constant_over_every_arm_and_seed_is_a_defect():
    records = [record(arm, s, {"macro_f1": 0.1 * s + (arm == "order_geometry") * 0.05, "accuracy": 0.731})
               for arm in ("order_geometry", "random_init") for s in range(3)]
    entry = results_of(records)
    assert any("accuracy: the same value 0.731 for every arm and seed" in d for d in entry["defects"])
    assert not any("macro_f1" in d for d in entry["defects"])


def test_a_missing_metric_is_a_defect():
    records = [record(arm, s, {"macro_f1": None if (arm, s) == ("random_init", 2) else 0.1 * s + 0.01 * len(arm)})
               for arm in ("order_geometry", "random_init") for s in range(3)]
    assert any("macro_f1: no value for random_init, seed 2" in d for d in results_of(records)["defects"])


def test_an_arm_that_predicts_one_class_is_a_defect():
    # what a randomly initialised encoder with vanishing features gave: Background for every frame
    collapsed = {"Background": 0.61, "3VV": 0.0, "4CH": 0.0, "Femur": 0.0}
    learned = {"Background": 0.7, "3VV": 0.2, "4CH": 0.0, "Femur": 0.4}
    records = [{**record(arm, s, {"macro_f1": 0.1 + 0.01 * s + 0.1 * (arm == "order_geometry")}),
                "per_class": collapsed if (arm, s) == ("random_init", 1) else learned}
               for arm in ("order_geometry", "random_init") for s in range(3)]
    defects = results_of(records)["defects"]
    assert [d for d in defects if "one class" in d] == [
        "plane_detection / linear / 100% / random_init, seed 1: predicts one class for every held-out sample"]


def test_a_metric_constant_only_because_every_arm_collapsed_is_reported_as_the_collapse():
    """Arms that each predict one class for a balanced test set all score 1/K: the collapse is
    the defect to report, not a metric that ignores the model; once one run learned, a
    constant metric is one again."""
    collapsed = {"Background": 0.4, "3VV": 0.0, "4CH": 0.0, "Femur": 0.0}
    learned = {"Background": 0.7, "3VV": 0.2, "4CH": 0.0, "Femur": 0.4}
    records = [{**record(arm, s, {"accuracy": 0.25}), "per_class": collapsed}
               for arm in ("order_geometry", "random_init") for s in range(3)]
    defects = results_of(records)["defects"]
    assert sum("predicts one class" in d for d in defects) == 6
    assert not any("the same value" in d for d in defects)
    records[-1]["per_class"] = learned  # random init, seed 2 learned, and still scores 0.25
    defects = results_of(records)["defects"]
    assert any("accuracy: the same value 0.25 for every arm and seed" in d for d in defects)
    assert sum("predicts one class" in d for d in defects) == 5


def test_unequal_budgets_in_a_comparison_are_a_defect():
    records = [record("order_geometry", 0, {"macro_f1": 0.3}), record("random_init", 0, {"macro_f1": 0.2}, max_steps=20),
               record("order_geometry", 1, {"macro_f1": 0.4}), record("random_init", 1, {"macro_f1": 0.1})]
    checks = budget_checks("plane_detection", "linear", 1.0, records, ["order_geometry", "random_init"])
    assert [(c["seed"], c["equal"], c["differs_in"]) for c in checks] == [(0, False, ["max_steps"]), (1, True, [])]
    assert any("budgets differ in max_steps" in d for d in results_of(records)["defects"])


def test_the_difference_is_bold_where_its_interval_excludes_zero():
    from ultrassl.benchmark.report import tables

    records = [record("order_geometry", s, {"macro_f1": 0.5 + 0.01 * s, "accuracy": 0.6 + 0.1 * (s % 2)})
               for s in range(3)]
    records += [record("random_init", s, {"macro_f1": 0.3 + 0.012 * s, "accuracy": 0.65 - 0.1 * (s % 2)})
                for s in range(3)]
    entry = results_of(records)
    text = "\n".join(tables({"tasks": {"plane_detection": entry}}, "plane_detection"))
    assert "| 100% | macro_f1 | **+0.198 [" in text
    accuracy = next(line for line in text.splitlines() if line.startswith("| 100% | accuracy |") and "+" in line)
    assert "**" not in accuracy
    row = next(r for r in entry["rows"] if r["metric"] == "macro_f1")
    assert row["differences"]["order_geometry"]["verdict"] == "better"


def test_records_are_written_whole_and_folders_keep_their_settings(tmp_path):
    write_json(tmp_path / "a" / "record.json", {"x": float("nan"), "y": [1, 2]})
    assert read_json(tmp_path / "a" / "record.json") == {"x": None, "y": [1, 2]}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["record.json"]  # no temporary left behind
    claim_folder(tmp_path, {"profile": {"seeds": [0, 1]}, "sim_seed": 0})
    claim_folder(tmp_path, {"profile": {"seeds": [0, 1]}, "sim_seed": 0})
    with pytest.raises(FolderMismatchError, match=r"profile.seeds: \[0, 1\] -> \[0, 1, 2\]"):
        claim_folder(tmp_path, {"profile": {"seeds": [0, 1, 2]}, "sim_seed": 0})
