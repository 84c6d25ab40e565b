"""Text classification data sets in their usual CSV forms.

* IMDB (the 50,000-review CSV): a header ``review,sentiment``, sentiment ``positive``/``negative``.
* AG News and DBpedia (the ``train.csv`` / ``test.csv`` of the character-CNN release): no header,
  rows ``class,title,text`` with classes numbered from 1 (4 and 14 classes).

Every loader returns ``(texts, labels)`` with labels from 0. Turn texts into ids with
:class:`deinforeg_sklearn.text.SequenceVectorizer`.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from deinforeg_sklearn.datasets._paths import missing

csv.field_size_limit(2**31 - 1)  # reviews can be longer than csv's 128 KB default


def _rows(path: str | os.PathLike) -> list[list[str]]:
    path = Path(path)
    if not path.is_file():
        raise missing(path, "CSV file", "pass the path of the data set's CSV file.")
    with open(path, newline="", encoding="utf-8") as handle:
        return [row for row in csv.reader(handle) if row]


def load_imdb_csv(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """IMDB reviews; label 1 = positive."""
    rows = _rows(path)
    header = [c.strip().lower() for c in rows[0]]
    if "review" not in header or "sentiment" not in header:
        raise ValueError(f"{path}: expected a header with 'review' and 'sentiment', got {rows[0]!r}.")
    text_col, label_col = header.index("review"), header.index("sentiment")
    texts, labels = [], []
    for number, row in enumerate(rows[1:], start=2):
        value = row[label_col].strip().lower()
        if value not in ("positive", "negative"):
            raise ValueError(f"{path}, row {number}: sentiment must be positive or negative, got {value!r}.")
        texts.append(row[text_col])
        labels.append(int(value == "positive"))
    return texts, np.array(labels, dtype=np.int64)


def load_class_title_text_csv(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """AG News or DBpedia: rows ``class,title,text`` (classes from 1); text = title + ". " + text."""
    texts, labels = [], []
    for number, row in enumerate(_rows(path), start=1):
        if len(row) < 3 or not row[0].strip().isdigit():
            raise ValueError(f"{path}, row {number}: expected 'class,title,text' with a numeric class.")
        texts.append(f"{row[1]}. {' '.join(row[2:])}")
        labels.append(int(row[0]) - 1)
    y = np.array(labels, dtype=np.int64)
    if len(y) and y.min() < 0:
        raise ValueError(f"{path}: classes must be numbered from 1.")
    return texts, y


load_ag_news_csv = load_class_title_text_csv
load_dbpedia_csv = load_class_title_text_csv
