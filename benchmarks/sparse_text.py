"""TF-IDF rows into DeInfoReg: sparse X densified per batch, against densifying X first.

Data: the four VADER corpora (23,320 sentences, label = sign of the human score; see
``deinforeg_sklearn.datasets.load_vader_sentences``), ``TfidfVectorizer(ngram_range=(1, 2),
max_features=2**16)``: a float64 CSR matrix of 23,320 x 65,536. Model: DeInfoReg with default
parameters except ``max_iter`` (the README's first model reads TF-IDF this way), fit on a
stratified 80 % of the rows; the other 20 % give the test accuracy, for information only
(nothing is chosen on it).

Each case runs in a fresh process, which builds the matrix, then measures the fit alone: its
wall time and its peak resident memory (``ru_maxrss``) minus the resident memory just before
``fit`` (the peak is reset there: /proc/self/clear_refs). A warm-up fit on 256 rows runs first,
so torch's one-off start-up allocations are not counted. The cases:

- ``sparse``: ``fit(X_csr)``; the target is peak growth under 2x the CSR size plus the model
  (its parameters, gradients and Adam's two moments: 4x the parameter bytes).
- ``sparse, keep_last_epoch=False``: the same fit without the copy of the last completed epoch
  that lets Ctrl-C keep it (the parameters and Adam's moments: 3x the parameter bytes).
- ``densified``: ``fit(X_csr.astype(float32).toarray())``, the array built before the measured
  region (a user's ``.toarray()``); the target is a sparse fit time within 1.3x of this one.

Beyond the model, a fit holds what the method needs whatever the input: the last-epoch copy
(default ``keep_last_epoch=True``) and one training batch densified for the first block
(``batch_size`` x 65,536 float32: 32 MiB at the default 128 rows). The page lists each term,
so that the measured growth can be read against them.

Run alone (2 CPU cores; torch.set_num_threads(2)):
    python benchmarks/sparse_text.py --fetch --max-iter 3
Results: docs/results/sparse_text.md and .csv
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

CASES = ("sparse", "sparse, keep_last_epoch=False", "densified")


def tfidf_split():
    """The TF-IDF matrix of the training rows and of the test rows, and their labels."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import train_test_split

    from deinforeg_sklearn.datasets import load_vader_sentences

    texts, y = load_vader_sentences()
    train, test, y_train, y_test = train_test_split(texts, y, test_size=0.2, stratify=y, random_state=0)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), max_features=2**16)
    return vectorizer.fit_transform(train), vectorizer.transform(test), y_train, y_test


def child(case: str, max_iter: int) -> dict:
    """One measured fit (in its own process); returns the row of the table."""
    import torch
    from experiment import current_rss_mib, peak_rss_mib, reset_peak_rss

    from deinforeg_sklearn import DeInfoRegClassifier

    torch.set_num_threads(2)
    X, X_test, y, y_test = tfidf_split()
    warm = np.random.default_rng(1).random((256, X.shape[1]), dtype=np.float32)
    DeInfoRegClassifier(max_iter=1).fit(warm, np.arange(256) % 2)  # torch's one-off allocations
    del warm
    if case == "densified":
        X = X.astype(np.float32).toarray()
    reset_peak_rss()  # the growth of this fit, not the peak of building X or of the warm-up
    before = current_rss_mib()
    start = time.perf_counter()
    keep = case != "sparse, keep_last_epoch=False"
    est = DeInfoRegClassifier(max_iter=max_iter, random_state=0, keep_last_epoch=keep).fit(X, y)
    seconds = time.perf_counter() - start
    grown = peak_rss_mib() - before
    params = sum(p.numel() for p in est.network_.parameters())
    return {
        "case": case,
        "rows": X.shape[0],
        "columns": X.shape[1],
        "fit_seconds": round(seconds, 1),
        "peak_rss_growth_mib": round(grown, 1),
        "model_mib": round(4 * params * 4 / 2**20, 1),
        "last_epoch_copy_mib": round(3 * params * 4 / 2**20, 1) if keep else 0.0,
        "dense_batch_mib": round(128 * X.shape[1] * 4 / 2**20, 1),
        "test_accuracy": round(float(est.score(X_test, y_test)), 4),
    }


def run(max_iter: int, out: Path) -> list[dict]:
    """Measure both cases, one fresh process each; write the page."""
    from report import child_result, table, write_csv, write_page

    X, _, _, _ = tfidf_split()
    csr_mib = sum(a.nbytes for a in (X.data, X.indices, X.indptr)) / 2**20
    rows = []
    for case in CASES:
        row = child_result([sys.executable, __file__, "--child", case, str(max_iter)], case)
        row["csr_mib"] = round(csr_mib, 1)
        row["dense_float32_mib"] = round(X.shape[0] * X.shape[1] * 4 / 2**20, 1)
        rows.append(row)
        print(row, flush=True)
    sparse, lean, dense = rows
    bound = 2 * csr_mib + sparse["model_mib"]
    floor = bound + sparse["last_epoch_copy_mib"] + sparse["dense_batch_mib"]
    lean_floor = bound + lean["dense_batch_mib"]
    write_csv(out / "sparse_text.csv", rows)
    header = ["case", "rows x columns", "fit s", "peak RSS growth (MiB)", "test accuracy"]
    body = [
        [
            r["case"],
            f"{r['rows']} x {r['columns']}",
            r["fit_seconds"],
            r["peak_rss_growth_mib"],
            r["test_accuracy"],
        ]
        for r in rows
    ]
    summary = (
        f"CSR {csr_mib:.1f} MiB; dense float32 copy {sparse['dense_float32_mib']:.0f} MiB; model "
        f"(parameters, gradients, Adam moments) {sparse['model_mib']:.1f} MiB. Sparse peak growth "
        f"{sparse['peak_rss_growth_mib']:.1f} MiB against the bound 2 x CSR + model = {bound:.1f} MiB "
        f"({'met' if sparse['peak_rss_growth_mib'] <= bound else 'missed'}); against that bound plus "
        f"the last-epoch copy ({sparse['last_epoch_copy_mib']:.1f} MiB) and one dense batch "
        f"({sparse['dense_batch_mib']:.1f} MiB) = {floor:.1f} MiB: "
        f"{'met' if sparse['peak_rss_growth_mib'] <= floor else 'missed'}. Without the last-epoch "
        f"copy: {lean['peak_rss_growth_mib']:.1f} MiB against 2 x CSR + model + one dense batch = "
        f"{lean_floor:.1f} MiB ({'met' if lean['peak_rss_growth_mib'] <= lean_floor else 'missed'}). "
        "Fit time sparse / "
        f"densified: {sparse['fit_seconds'] / dense['fit_seconds']:.2f}x (target at most 1.3x). "
        f"max_iter={max_iter}, 2 threads."
    )
    write_page(
        out / "sparse_text.md",
        "TF-IDF rows: sparse X against densifying first",
        __doc__.split("Run alone")[0],
        [table(header, body), summary],
    )
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print("RESULT " + json.dumps(child(sys.argv[2], int(sys.argv[3]))))
    else:
        parser = argparse.ArgumentParser(
            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        parser.add_argument("--max-iter", type=int, default=3)
        parser.add_argument(
            "--fetch", action="store_true", help="download the VADER sdist from PyPI if missing"
        )
        parser.add_argument("--out", default="docs/results")
        args = parser.parse_args()
        if args.fetch:
            from deinforeg_sklearn.datasets import load_vader_movie_reviews

            load_vader_movie_reviews(download=True)
        run(args.max_iter, Path(args.out))
