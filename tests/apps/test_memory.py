"""The byte-bounded store of model outputs, and the progress a loop prediction reports."""

from __future__ import annotations

import numpy as np

from apps.memory import ByteBudgetLRU, nbytes
from ultrassl.downstream.inference import LoopPredictor


def test_the_store_keeps_the_most_recent_entries_within_its_budget():
    store = ByteBudgetLRU(max_bytes=3000)
    arrays = {name: {"maps": np.zeros(1000, np.uint8), "names": ["a"]} for name in "abcd"}
    for name in "abc":
        store.put(name, arrays[name])
    assert len(store) == 3 and store.bytes == 3000
    assert store.get("a") is arrays["a"]  # "a" is now the most recent
    store.put("d", arrays["d"])  # over budget: the least recently used ("b") goes
    assert store.get("b") is None and store.get("a") is not None and store.bytes == 3000
    store.put("huge", {"maps": np.zeros(5000, np.uint8)})  # larger than the budget: not kept
    assert store.get("huge") is None and store.bytes == 3000
    assert nbytes([np.zeros(4, np.float32), {"x": np.zeros(2, np.int64)}, "text"]) == 32


def test_a_loop_prediction_reports_its_progress(fetal_set, models):
    calls = []
    predictor = LoopPredictor(models["plane_detection"])
    prediction = predictor.predict(fetal_set.parent / "sweeps" / "sweep_000.dcm",
                                   progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (12, 12) and prediction.n_frames == 12
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
