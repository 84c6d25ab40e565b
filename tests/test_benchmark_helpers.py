"""Helpers of the paper-table benchmarks (benchmarks/): label noise, sentence embedding, reports."""

import gzip
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

from batch_size import kept_rows
from experiment import al_extra_epochs, parser, setup
from noisy_labels import corrupt
from op_count import _CountOps, _network, _step
from paper_numbers import BATCH_SIZE_TABLES, PAPER_SETTING, table_batch_sizes
from report import command, mean_std, read_csv, table, write_csv
from tasks import TASKS, embed_sentences

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Embedding, Transformer
from deinforeg_sklearn.text import WordVectors, save_word_vectors


@pytest.mark.parametrize("ratio", [0.0, 0.2, 0.8])
def test_label_noise_relabels_the_ratio_uniformly(ratio):
    y = np.repeat(np.arange(5), 400)
    noisy = corrupt(y, ratio, seed=3)
    wrong = (noisy != y).mean()
    assert wrong == pytest.approx(ratio * 4 / 5, abs=0.03)  # a draw may hit the true class
    assert set(np.unique(noisy)) <= set(range(5))
    np.testing.assert_array_equal(corrupt(y, ratio, seed=3), noisy)  # one draw per seed
    # the true class stays the most frequent label of its rows
    for k in range(5):
        assert np.bincount(noisy[y == k], minlength=5).argmax() == k


def test_sentence_embedding_pads_and_zeroes_unknown_words():
    vectors = WordVectors(["good", "film"], np.array([[1.0, 2.0], [3.0, 4.0]]))
    X = embed_sentences(["Good film!", "unknown good", "film good film good"], 3, vectors)
    assert X.shape == (3, 6)
    np.testing.assert_array_equal(X[0], [1, 2, 3, 4, 0, 0])
    np.testing.assert_array_equal(X[1], [0, 0, 1, 2, 0, 0])
    np.testing.assert_array_equal(X[2], [3, 4, 1, 2, 3, 4])  # cut at 3 words


def test_al_plateau_budget_in_epochs():
    # 1000 rows, 10 % held out, batch 100 -> 9 steps per epoch -> 200 steps = 23 epochs
    assert al_extra_epochs(1000, 100, 0.1) == 23
    assert al_extra_epochs(10, 512, 0.1) == 200


def test_reports(tmp_path):
    assert mean_std([0.5, 0.7]) == "60.00 ± 14.14"
    assert mean_std([0.5]) == "50.00 ± 0.00"
    assert table(["a", "b"], [[1, 2]]) == "| a | b |\n|---|---|\n| 1 | 2 |"
    write_csv(tmp_path / "r.csv", [{"x": 1, "estimator": object()}, {"x": 2, "y": 3}])
    assert (tmp_path / "r.csv").read_text().splitlines() == ["x,y", "1,", "2,3"]


def test_quick_tasks_load_bundled_data():
    for name in ("digits-conv", "digits-lstm"):
        task = TASKS[name]
        X, y, X_test, y_test = task.load(None)
        assert len(X) == len(y) == 1347 and len(X_test) == len(y_test) == 450
        assert len(task.blocks(task.depth)) == task.depth


def test_paper_scale_tasks_read_their_files(tmp_path):
    from test_datasets import write_csv, write_pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data = np.full((2, 3072), 255, dtype=np.uint8)
    for i in range(1, 6):
        write_pickle(folder / f"data_batch_{i}", {b"data": data, b"labels": [0, 1]})
    write_pickle(folder / "test_batch", {b"data": data, b"labels": [1, 0]})
    X, y, X_test, _ = TASKS["cifar10-vgg"].load(str(tmp_path))
    assert X.shape == (10, 3072) and X.dtype == np.float32 and X.max() == 1.0
    assert TASKS["cifar10-vgg"].fit_params["input_shape"] == (3, 32, 32)

    rows = [["review", "sentiment"], ["a fine film", "positive"], ["a dull film", "negative"]]
    write_csv(tmp_path / "imdb_train.csv", rows)
    write_csv(tmp_path / "imdb_test.csv", rows[:2])
    for name in ("imdb-lstm", "imdb-transformer"):
        X, y, X_test, y_test = TASKS[name].load(str(tmp_path))
        assert X.shape == (2, 350) and X_test.shape == (1, 350) and X.dtype.kind == "i"
        np.testing.assert_array_equal(y, [1, 0])
        np.testing.assert_array_equal(y_test, [1])
        assert TASKS[name].tokens
    blocks = TASKS["imdb-transformer"].blocks(4)
    assert [type(b) for b in blocks] == [Embedding, *[Transformer] * 4]
    assert all(b.layers == 3 and b.d_model == 300 for b in blocks[1:])


def write_vader_file(folder, positive: str, negative: str) -> None:
    """A 20-sentence VADER ground-truth file: "<positive> i" (score 2) and "<negative> i" (-2)."""
    lines = [f"{i}\t{2.0 if i % 2 else -2.0}\t{positive if i % 2 else negative} {i}" for i in range(20)]
    (folder / "movieReviewSnippets_GroundTruth.txt").write_text("\n".join(lines) + "\n", encoding="latin-1")


def test_vader_tasks_read_an_offline_copy(tmp_path):
    # what text_sentiment.py --offline-copy writes: the sentences and a GloVe file of their words
    write_vader_file(tmp_path, "Good film", "Bad film")
    vectors = WordVectors(["good", "bad", "film"], np.arange(150, dtype=np.float32).reshape(3, 50))
    save_word_vectors(vectors, tmp_path / "words.txt.gz")
    args = ["--task", "vader-lstm", "--data-dir", str(tmp_path), "--vectors", str(tmp_path / "words.txt.gz")]
    args += ["--threads", str(torch.get_num_threads())]  # setup sets it: leave it as it is
    _, (X, y, X_test, _), _ = setup(parser("", "digits-conv", "digits-conv", 1, 1).parse_args(args))
    assert X.shape == (16, 40 * 50) and X_test.shape == (4, 40 * 50)
    for row, label in zip(X, y, strict=True):
        first_word = vectors.vectors[0] if label == 1 else vectors.vectors[1]  # "good" / "bad"
        np.testing.assert_array_equal(row[:50], first_word)
        np.testing.assert_array_equal(row[50:100], vectors.vectors[2])  # "film"
        assert not row[100:].any()  # the number has no vector; padding is zero
    with pytest.raises(SystemExit, match="--vectors applies to tasks that read word vectors"):
        setup(parser("", "digits-conv", "digits-conv", 1, 1).parse_args(["--vectors", "x.txt"]))


def test_paper_tables_have_one_number_per_batch_size():
    for setting, methods in BATCH_SIZE_TABLES.items():
        for accuracies in methods.values():
            assert len(accuracies) == len(table_batch_sizes(setting)), setting
    assert table_batch_sizes(PAPER_SETTING["vader-transformer"]) == (64, 128, 256)
    assert table_batch_sizes(PAPER_SETTING["vader-lstm"]) == (64, 128, 256, 512)
    # every task is compared with some paper setting that exists
    assert set(PAPER_SETTING) == set(TASKS)
    assert all(setting in BATCH_SIZE_TABLES for setting in PAPER_SETTING.values())


@pytest.mark.parametrize("name", ["fashion-vgg", "fashion-resnet", "vader-lstm", "vader-transformer"])
def test_cpu_scale_networks_train_on_their_input_shape(name):
    # The CPU-scale data sets are not bundled: random rows of the task's input shape stand in,
    # so that a wrong block list or shape fails here rather than an hour into a benchmark.
    task = TASKS[name]
    shape = task.fit_params["input_shape"]
    rng = np.random.default_rng(0)
    X = rng.random((40, int(np.prod(shape))), dtype=np.float32)
    y = np.arange(40) % 2
    est = DeInfoRegClassifier(blocks=task.blocks(task.depth), max_iter=1, batch_size=20, random_state=0)
    est.set_params(**task.fit_params).fit(X, y)
    assert len(est.network_.blocks) == task.depth
    assert est.predict_proba(X).shape == (40, 2)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 1 epoch, on purpose
def test_result_rows_name_the_inference_block_only_for_deinforeg():
    from experiment import Budget, run

    task = TASKS["digits-conv"]
    data = task.load(None)
    rows = {m: run(m, task, data, task.depth, 0, Budget(1, 1), batch_size=256) for m in ("BP", "DeInfoReg")}
    assert "block_used" not in rows["BP"]  # one head, after the last block
    assert 1 <= rows["DeInfoReg"]["block_used"] <= task.depth
    assert rows["DeInfoReg"]["block_used"] == rows["DeInfoReg"]["estimator"].inference_block_ + 1


def test_offline_copy_gives_the_same_vader_sequences(tmp_path, monkeypatch):
    from text_sentiment import OFFLINE_VECTORS, offline_copy

    cache = tmp_path / "cache"
    cache.mkdir()
    write_vader_file(cache, "A fine film, take", "A dull film, take")
    rng = np.random.RandomState(0)
    words = ["the", "a", "fine", "dull", "film", "take", "unused"]
    glove = tmp_path / "glove.txt"
    glove.write_text("".join(f"{w} {' '.join(map(str, rng.randn(50)))}\n" for w in words), encoding="utf-8")
    monkeypatch.setenv("DEINFOREG_DATA", str(cache))

    copy = tmp_path / "copy"
    offline_copy(copy, str(glove))
    with gzip.open(copy / OFFLINE_VECTORS, "rt") as handle:
        kept = {line.split(" ")[0] for line in handle}
    assert kept == {"a", "fine", "dull", "film", "take"}  # only the words the sentences use
    original = TASKS["vader-lstm"].load(str(cache), str(glove))
    copied = TASKS["vader-lstm"].load(str(copy), str(copy / OFFLINE_VECTORS))
    for a, b in zip(original, copied, strict=True):
        np.testing.assert_array_equal(a, b)


def test_recorded_command_leaves_out_an_output_folder_outside_the_repository(tmp_path):
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "memory.py")
    outside = str(tmp_path / "out")
    assert command([script, "--task", "vader-lstm", "--out", outside, "--quick"]) == (
        "python benchmarks/memory.py --task vader-lstm --quick"
    )
    assert command([script, f"--out={outside}"]) == "python benchmarks/memory.py"
    inside = ["--out", "docs/results/quick", "--seeds", "1"]
    assert command([script, *inside]) == "python benchmarks/memory.py " + " ".join(inside)


def test_kept_rows_read_back_typed_and_refuse_a_missing_seed(tmp_path):
    rows = [
        {"method": m, "seed": seed, "test_accuracy": 0.5 + seed / 10, "block_used": "", "batch_size": b}
        for m in ("BP", "AL")
        for b in (64, 512)
        for seed in (0, 1)
    ]
    path = tmp_path / "rows.csv"
    write_csv(path, rows)
    assert read_csv(path) == rows  # ints, floats and empty cells come back as written
    kept = kept_rows(str(path), ["AL"], [64, 512], [0, 1])
    assert [(r["method"], r["batch_size"], r["seed"]) for r in kept] == [
        ("BP", 64, 0),
        ("BP", 64, 1),
        ("BP", 512, 0),
        ("BP", 512, 1),
    ]
    assert [r["seed"] for r in kept_rows(str(path), ["AL"], [64], [1])] == [1]
    with pytest.raises(SystemExit, match=r"no BP rows for \(batch size, seed\) \[\(64, 2\), \(512, 2\)\]"):
        kept_rows(str(path), ["AL"], [64, 512], [0, 1, 2])


def test_data_memory_child_reports_growth_against_the_uint8_size(tmp_path):
    from data_memory import ROW_BYTES, child, write_data

    path = tmp_path / "x.u8"
    write_data(path, 300)
    assert path.stat().st_size == 300 * ROW_BYTES
    row = child("memmap", str(path), 300)
    assert row["rows"] == 300 and row["storage"] == "memmap"
    assert row["data_mib_uint8"] == round(300 * ROW_BYTES / 2**20, 1)
    data_mib = 300 * ROW_BYTES / 2**20
    ratio = row["peak_rss_growth_mib"] / data_mib
    # the growth is rounded to 0.1 MiB (so the ratio from it is off by up to 0.05 / data_mib),
    # the ratio itself to 0.01
    assert row["growth_over_uint8_size"] == pytest.approx(ratio, abs=0.05 / data_mib + 0.005)


def test_op_count_counts_every_operation_of_a_training_step():
    from deinforeg_sklearn.blocks import Dense

    with _CountOps() as counter:
        torch.ones(3).mul(2).sum()
    assert counter.counts["aten.mul"] == 1 and counter.counts["aten.sum"] == 1
    network, xb, yb = _network(DeInfoRegClassifier, [Dense(8)] * 2, 5)
    with _CountOps() as counter:
        _step(network, xb, yb)
    # both blocks' layers ran forward and backward, and both optimisers stepped
    assert counter.counts["aten.native_batch_norm_backward"] >= 2 and counter.counts["aten._fused_adam_"] == 2


def test_the_tick_benchmarks_still_hook_the_wavefront_tick():
    # op_count.py and flops.py wrap engines.wavefront._tick; a refactor that moves it must
    # move them too (they once patched a method that no longer existed)
    from flops import step_flops, wavefront_tick_flops
    from op_count import measure_wavefront

    from deinforeg_sklearn.blocks import Dense

    ops, seconds = measure_wavefront([Dense(32)] * 3, 20, n_batches=8)
    assert ops > 0 and seconds > 0
    # a steady tick does every block's step: the sequential step's matrix work, plus the
    # first block's zero-padded input columns (64 -> 256) now that it joins the stack
    assert wavefront_tick_flops() > step_flops("DeInfoReg")
