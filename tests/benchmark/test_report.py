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


def drawn(arm: str, seed: int, draw: int, macro_f1: float | None, per_class: dict | None = None) -> dict:
    """A record of one label draw at 20 %: its manifest (and so its budget) is the draw's own."""
    return {**record(arm, seed, {"macro_f1": macro_f1}, manifest_sha256=f"draw{draw}"), "fraction": 0.2,
            "draw": draw, "per_class": per_class}


def drawn_results(records: list[dict]) -> dict:
    profile = load_profile({**PROFILE, "tasks": {"plane_detection": {
        **PROFILE["tasks"]["plane_detection"], "fractions": [0.2], "label_draws": 3}}})
    return task_results(profile, profile.tasks["plane_detection"], records)


def test_a_seed_averages_its_label_draws_and_the_difference_pairs_them():
    pretrained = {(0, 0): 0.30, (0, 1): 0.40, (0, 2): 0.20, (1, 0): 0.35, (1, 1): 0.25, (1, 2): 0.30,
                  (2, 0): 0.32, (2, 1): 0.28}  # seed 2 lacks draw 2
    random = {(0, 0): 0.25, (0, 1): 0.30, (0, 2): 0.20, (1, 0): 0.30, (1, 1): 0.25, (1, 2): 0.20,
              (2, 0): 0.20, (2, 1): 0.30, (2, 2): 0.90}
    records = [drawn("order_geometry", s, d, v) for (s, d), v in pretrained.items()]
    records += [drawn("random_init", s, d, v) for (s, d), v in random.items()]
    entry = drawn_results(records)
    row = next(r for r in entry["rows"] if r["metric"] == "macro_f1")
    assert row["draws"] == 3
    ours, theirs = row["arms"]["order_geometry"], row["arms"]["random_init"]
    assert ours["per_seed"]["0"] == pytest.approx(0.30) and ours["per_seed"]["2"] == pytest.approx(0.30)
    assert theirs["per_seed"]["2"] == pytest.approx(1.4 / 3) and ours["n"] == theirs["n"] == 3
    assert ours["per_draw"]["1"] == {"0": 0.35, "1": 0.25, "2": 0.30}
    # the difference of seed 2 leaves out the draw only random init has
    difference = row["differences"]["order_geometry"]
    assert difference["per_seed"] == pytest.approx({"0": 0.05, "1": 0.05, "2": 0.05})
    assert difference["mean"] == pytest.approx(0.05)
    checks = budget_checks("plane_detection", "linear", 0.2, records, ["order_geometry", "random_init"])
    assert [(c["seed"], c["draw"]) for c in checks] == [(s, d) for s in range(3) for d in range(3)]
    assert all(c["equal"] for c in checks)  # each draw's arms share that draw's manifest
    from ultrassl.benchmark.report import tables

    assert "| 20% (3 draws) | macro_f1 | 0.300 [0.300, 0.300] |" in "\n".join(tables({"tasks": {"plane_detection": entry}},
                                                                    "plane_detection"))


def test_a_draw_without_a_value_leaves_its_seed_without_one():
    records = [drawn(arm, s, d, None if (arm, s, d) == ("random_init", 1, 2) else 0.1 + 0.01 * (s + d))
               for arm in ("order_geometry", "random_init") for s in range(3) for d in range(3)]
    entry = drawn_results(records)
    assert "plane_detection / linear / 20% / macro_f1: no value for random_init, seed 1" in entry["defects"]
    row = next(r for r in entry["rows"] if r["metric"] == "macro_f1")
    assert row["arms"]["random_init"]["per_seed"]["1"] is None and row["arms"]["random_init"]["n"] == 2


def test_a_collapsed_label_draw_is_named():
    collapsed = {"Background": 0.61, "3VV": 0.0, "4CH": 0.0, "Femur": 0.0}
    learned = {"Background": 0.7, "3VV": 0.2, "4CH": 0.0, "Femur": 0.4}
    records = [drawn(arm, s, d, 0.1 + 0.01 * (s + d) + 0.1 * (arm == "random_init"),
                     collapsed if (arm, s, d) == ("order_geometry", 2, 1) else learned)
               for arm in ("order_geometry", "random_init") for s in range(3) for d in range(3)]
    defects = drawn_results(records)["defects"]
    assert [d for d in defects if "one class" in d] == [
        "plane_detection / linear / 20% / order_geometry, seed 2, label draw 1: predicts one class for every "
        "held-out sample"]


def test_unequal_budgets_within_a_label_draw_are_a_defect():
    records = [drawn("order_geometry", 0, d, 0.3) for d in range(2)] + [drawn("random_init", 0, d, 0.2) for d in range(2)]
    records[3]["budget"]["max_steps"] = 99
    defects = drawn_results(records)["defects"]
    assert any("seed 0, label draw 1: the arms' budgets differ in max_steps" in d for d in defects)


def test_a_protocol_with_fewer_draws_than_its_task_is_compared_on_its_own_draws():
    profile = load_profile({**PROFILE, "arms": ["pretrained", "random_init", "baseline"], "tasks": {"plane_detection": {
        **PROFILE["tasks"]["plane_detection"], "protocols": {"linear": {}, "finetune": {"label_draws": 1}},
        "fractions": [0.2], "label_draws": 3}}})
    records = [drawn(arm, s, d, 0.2 + 0.01 * d + 0.001 * s) for arm in ("order_geometry", "random_init")
               for s in range(3) for d in range(3)]
    records += [{**drawn(arm, s, 0, 0.3 + 0.001 * s), "protocol": "finetune"}
                for arm in ("order_geometry", "random_init") for s in range(3)]
    records += [{**drawn("baseline", s, d, 0.1 * (d + 1)), "kind": "baseline"} for s in range(3) for d in range(3)]
    rows = {r["protocol"]: r for r in task_results(profile, profile.tasks["plane_detection"], records)["rows"]}
    assert rows["linear"]["draws"] == 3 and rows["finetune"]["draws"] == 1
    # beside the linear probes the baseline averages its three draws; beside the one-draw
    # fine-tunes it stands on that draw alone
    assert rows["linear"]["arms"]["baseline"]["mean"] == pytest.approx(0.2)
    assert rows["finetune"]["arms"]["baseline"]["mean"] == pytest.approx(0.1)
    assert "per_draw" not in rows["finetune"]["arms"]["baseline"]


def test_random_init_is_the_mean_of_its_networks_and_a_collapsed_network_is_named():
    profile = load_profile({**PROFILE, "tasks": {"plane_detection": {
        **PROFILE["tasks"]["plane_detection"], "protocols": {"linear": {"random_inits": 3}}}}})
    learned = {"Background": 0.7, "3VV": 0.2, "4CH": 0.1}
    records = [{**record("order_geometry", s, {"macro_f1": 0.30 + 0.01 * s}), "per_class": learned} for s in range(3)]
    for s in range(3):
        for k, value in enumerate((0.10, 0.20, 0.30)):
            records.append({**record("random_init", s, {"macro_f1": value + 0.01 * s}),
                            "per_class": {"Background": 0.6, "3VV": 0.0, "4CH": 0.0} if (s, k) == (2, 1) else learned,
                            **({"network": k} if k else {})})
    records = records[:3] + records[3:][::-1]  # the networks in any order
    entry = task_results(profile, profile.tasks["plane_detection"], records)
    row = next(r for r in entry["rows"] if r["metric"] == "macro_f1")
    assert row["random_inits"] == 3
    assert row["arms"]["random_init"]["per_seed"] == pytest.approx({"0": 0.20, "1": 0.21, "2": 0.22})
    assert row["differences"]["order_geometry"]["mean"] == pytest.approx(0.10)
    # the collapsed second network of seed 2 hides in the mean; the report names it
    assert [d for d in entry["defects"] if "one class" in d] == [
        "plane_detection / linear / 100% / random_init network 1, seed 2: predicts one class for every held-out sample"]
    # the first network alone is the one-network comparison
    single = task_results(profile, profile.tasks["plane_detection"], [r for r in records if "network" not in r])
    row = next(r for r in single["rows"] if r["metric"] == "macro_f1")
    assert row["random_inits"] == 1 and row["differences"]["order_geometry"]["mean"] == pytest.approx(0.20)
