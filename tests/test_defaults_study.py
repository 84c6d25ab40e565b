"""The defaults study's helpers (benchmarks/dev_suite.py, defaults.py, defaults_report.py).

Invariant: the study never lets test rows reach a choice: the three splits of a seed are
disjoint and stratified, and the candidate lists and reports read validation columns only.
"""

import csv
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

from defaults import SELECTION_RULES, _inner_validation, candidates
from defaults_report import MARKER, final_table, selection_table, study_tables, write_report
from dev_suite import SUITE, split
from experiment import PAPER_DEINFOREG, Budget, make_estimator
from tasks import TASKS


@pytest.mark.parametrize("name", ["digits", "wine", "breast_cancer", "tabular"])
def test_splits_are_disjoint_stratified_and_differ_by_seed(name):
    dev = SUITE[name]
    X, y = dev.load()
    X_tr, y_tr, X_va, y_va, X_te, y_te = split(dev, 0)
    assert len(y_tr) + len(y_va) + len(y_te) == len(y)
    rows = {tuple(r) for r in X_tr} | {tuple(r) for r in X_va} | {tuple(r) for r in X_te}
    assert len(rows) == len({tuple(r) for r in X})  # every row in exactly one split
    for part in (y_tr, y_va, y_te):  # class shares kept within one sample per class
        for c in np.unique(y):
            assert abs(np.mean(part == c) - np.mean(y == c)) < 2 / len(part) + 0.01
    assert not np.array_equal(split(dev, 1)[1], y_tr)


def test_candidates_cover_the_studied_grid():
    dense = candidates("dense", SUITE["digits"], "heads")
    assert dense[0] == {"method": "BP"}
    assert len(dense) == 1 + 3 * 4
    assert {c["projector"] for c in dense[1:]} == {None, (256,), (256, 256)}
    conv = candidates("conv", SUITE["fashion_conv"], "heads")
    assert [c.get("projector") for c in conv] == [None, None, None, (256,)]
    lstm = candidates("recurrent", SUITE["vader_lstm"], "heads")
    assert lstm[-1]["projector"] == (64,)  # a bidirectional LSTM(32) hands on 64 features
    residual = candidates("residual", SUITE["fashion_residual"], "heads")
    assert [c.get("projector") for c in residual] == [None, None, None, "auto"]


def test_training_candidates_start_from_the_named_heads(monkeypatch):
    monkeypatch.setenv("DEINFOREG_STUDY_HEADS", "projector=1;alpha=1.0")
    found = candidates("dense", SUITE["wine"], "training")
    assert all(c["projector"] == (64,) and c["alpha"] == 1.0 for c in found)
    assert {"early_stopping": True} in [{k: v for k, v in c.items() if k == "early_stopping"} for c in found]
    monkeypatch.setenv("DEINFOREG_STUDY_HEADS", "projector=0;alpha=1.0")
    (only,) = candidates("recurrent", SUITE["vader_lstm"], "training")
    assert only["projector"] == () and only["learning_rate"] == 3e-3
    assert {c["max_iter"] for c in candidates("dense", SUITE["wine"], "epochs")} == {20, 30}


def test_width_stage_narrows_the_dense_projector_and_skips_other_kinds():
    widths = [c["projector"] for c in candidates("dense", SUITE["digits"], "width")]
    assert widths == [(256,), (128,), (64,)]
    assert [c["projector"] for c in candidates("dense", SUITE["wine"], "width")] == [(64,), (32,), (16,)]
    assert candidates("conv", SUITE["fashion_conv"], "width") == []


def test_a_stage_resumes_its_own_rows_only(tmp_path):
    from defaults import _done

    path = tmp_path / "study.csv"
    _write(path, [{"set": "digits", "seed": 0, "stage": "training", "config": "projector=(256,)"}])
    done = _done(path)
    assert ("digits", "0", "training", "projector=(256,)") in done
    assert ("digits", "0", "width", "projector=(256,)") not in done  # rerun on the current code


def test_paper_benchmarks_keep_the_paper_settings_not_the_package_defaults():
    task = TASKS["digits-lstm"]
    est = make_estimator("DeInfoReg", task, 2, 0, Budget(3, 2), None)
    assert (est.alpha, est.projector, est.final_learning_rate) == (1e-3, None, None)
    assert set(PAPER_DEINFOREG) == {"alpha", "projector", "learning_rate", "final_learning_rate"}
    assert est.learning_rate == task.fit_params["learning_rate"]  # the task's own value wins
    assert make_estimator("DeInfoReg", task, 2, 0, Budget(3, 2), None, alpha=0.5).alpha == 0.5


def _write(path, rows):
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_report_tables_from_rows(tmp_path):
    study = [
        {"set": "wine", "kind": "dense", "seed": s, "stage": "heads", "config": c, "val_last": v,
         "val_best": v + 0.01, "depth": 4, "max_iter": 50}
        for s in ("0", "1") for c, v in (("method=BP", 0.8), ("alpha=1.0;projector=None", 0.9))
    ]  # fmt: skip
    lines = study_tables(study)
    row = next(line for line in lines if line.startswith("| alpha=1.0"))
    assert "0.900 / 0.910" in row and row.endswith("+11.00 |")  # best-block 0.91 vs BP's 0.80
    final = [
        {"set": "wine", "method": m, "test": t, "fit_s": f, "depth": 4, "epochs": 50}
        for m, t, f in (("BP", 0.9, 1.0), ("DeInfoReg", 0.92, 3.0), ("BP_cosine", 0.91, 1.0))
    ]
    table, summary = final_table(final)
    assert summary["wine"] == pytest.approx((2.0, 3.0))
    assert "0.9100" in table[-1]
    _write(tmp_path / "study.csv", study)
    _write(tmp_path / "final.csv", final)
    page = tmp_path / "defaults.md"
    page.write_text("# hand-written\n\nkept\n\n" + MARKER + "\nold generated part\n")
    selection = [
        {"set": "wine", "depth": d, "inner_n": 11, "inner_acc": "0.9 1.0 1.0", "inner_loss": "0.3 0.1 0.2",
         "val_blocks": "0.80 0.90 0.70"}
        for d in (4, 12)
    ]  # fmt: skip
    _write(tmp_path / "selection.csv", selection)
    write_report(
        tmp_path / "study.csv",
        tmp_path / "final.csv",
        tmp_path / "none.csv",
        page,
        tmp_path / "selection.csv",
        SELECTION_RULES,
    )
    text = page.read_text()
    assert text.startswith("# hand-written") and "kept" in text and "old generated part" not in text
    assert text.count(MARKER) == 1 and "| wine |" in text
    assert "| deeper | 70.00 |" in text and "| tie_log_loss | 90.00 |" in text


def test_selection_rules_pick_the_block_they_name():
    acc, loss = np.array([0.9, 1.0, 1.0, 0.8]), np.array([0.2, 0.3, 0.1, 0.05])
    picks = {name: rule(acc, loss) for name, rule in SELECTION_RULES.items()}
    assert picks == {"deeper": 2, "shallower": 1, "tie_log_loss": 2, "log_loss": 3}
    table = selection_table(
        [{"set": "wine", "depth": 4, "inner_n": 11, "inner_acc": "0.9 1.0 1.0 0.8",
          "inner_loss": "0.2 0.3 0.1 0.05", "val_blocks": "0.5 0.6 0.7 0.8"}],
        SELECTION_RULES,
    )  # fmt: skip
    assert table[2].startswith("| deeper | 70.00 |") and table[3].startswith("| shallower | 60.00 |")


def test_the_rebuilt_inner_split_is_the_one_the_fit_scored():
    from deinforeg_sklearn import DeInfoRegClassifier
    from deinforeg_sklearn.blocks import Dense

    rng = np.random.RandomState(0)
    X = rng.rand(120, 5).astype(np.float32)
    y = np.array(["a", "b", "c"])[(X[:, 0] * 3).astype(int)]
    clf = DeInfoRegClassifier(blocks=[Dense(8)] * 2, max_iter=2, random_state=4).fit(X, y)
    X_in, y_in = _inner_validation(clf, X, y)
    assert len(y_in) == 12
    scores = [np.mean(clf.classes_[p.argmax(1)] == y_in) for p in clf.staged_predict_proba(X_in)]
    np.testing.assert_allclose(scores, clf.block_scores_)
