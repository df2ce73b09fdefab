"""Classification report (torchmetrics) and kNN retrieval recall@k, against hand counts."""

from __future__ import annotations

import math

import pytest
import torch

from ultrassl.metrics.classification import (ClassificationMetrics, classification_report, informative_retrieval_ks,
                                             retrieval_recall_at_k)


def test_report_matches_hand_counts():
    # true:      0 0 0 1 1 2 | predicted: 0 0 1 1 2 2; class 3 never occurs
    target = torch.tensor([0, 0, 0, 1, 1, 2])
    preds = torch.tensor([0, 0, 1, 1, 2, 2])
    report = classification_report(preds, target, num_classes=4, class_names=["bg", "a", "b", "c"])
    assert report["confusion"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    per_class = report["per_class"]
    assert per_class["bg"]["precision"] == pytest.approx(1.0) and per_class["bg"]["recall"] == pytest.approx(2 / 3)
    assert per_class["a"]["precision"] == pytest.approx(0.5) and per_class["a"]["recall"] == pytest.approx(0.5)
    assert per_class["b"]["precision"] == pytest.approx(0.5) and per_class["b"]["recall"] == pytest.approx(1.0)
    f1 = {"bg": 0.8, "a": 0.5, "b": 2 / 3}
    for name, value in f1.items():
        assert per_class[name]["f1"] == pytest.approx(value)
    assert math.isnan(per_class["c"]["f1"]) and per_class["c"]["support"] == 0
    # macro over the three classes that occur, not the absent fourth
    assert report["macro_f1"] == pytest.approx(sum(f1.values()) / 3)
    assert report["macro_precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert report["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert report["accuracy"] == pytest.approx(4 / 6)


def test_metrics_accumulate_over_batches_take_logits_and_skip_ignored_targets():
    metrics = ClassificationMetrics(num_classes=3)
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    metrics.update(logits, torch.tensor([0, 2]))
    metrics.update(torch.tensor([2, 1]), torch.tensor([2, -1]))  # the -1 target is skipped
    report = metrics.report()
    assert report["confusion"] == [[1, 0, 0], [0, 0, 0], [0, 1, 1]]
    assert report["accuracy"] == pytest.approx(2 / 3)


def test_retrieval_recall_at_k_counts_a_hit_among_the_k_nearest():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.1], [0.7, 0.7]])
    bank_labels = torch.tensor([0, 1, 2, 1])
    # query 0 lies nearest bank 0 (label 0) then bank 3 (label 1); query 1 nearest bank 2
    queries = torch.tensor([[2.0, 0.5], [-3.0, 0.0]])
    query_labels = torch.tensor([1, 0])
    recall = retrieval_recall_at_k(queries, query_labels, bank, bank_labels, ks=(1, 2, 4, 50))
    assert recall == {1: 0.0, 2: 0.5, 4: 1.0, 50: 1.0}  # k = 50 is clamped to the 4 items


def test_a_k_that_cannot_miss_is_not_informative():
    one_per_class = torch.arange(8)
    assert informative_retrieval_ks(one_per_class, (1, 5, 7, 8, 10)) == (1, 5, 7)
    # with k = 8 all 8 bank items are retrieved: every query hits, whatever the features
    features = torch.randn(8, 4)
    assert retrieval_recall_at_k(torch.randn(5, 4), torch.arange(5), features, one_per_class, ks=(8,)) == {8: 1.0}
    # a large class leaves fewer items outside it: k must stay within those 3
    assert informative_retrieval_ks(torch.tensor([0, 0, 0, 0, 0, 1, 2, 3]), (1, 3, 4)) == (1, 3)


def test_retrieval_leave_one_out_never_retrieves_the_query_itself():
    features = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 1, 1, 0])
    # each item's nearest other item has the other label: recall@1 = 0 (it would be 1 with self)
    recall = retrieval_recall_at_k(features, labels, ks=(1, 3))
    assert recall == {1: 0.0, 3: 1.0}
