"""Real data sets, read from local files in their standard formats (downloads are opt-in).

Images (:mod:`.images`): Fashion-MNIST/MNIST (IDX), CIFAR-10/100 (python pickles), TinyImageNet
(folder). Text (:mod:`.text_csv`): IMDB, AG News and DBpedia CSV files; (:mod:`.vader`) the VADER
movie-review sentences, which can be fetched from PyPI.
"""

from deinforeg_sklearn.datasets._paths import default_cache
from deinforeg_sklearn.datasets.images import (
    load_cifar,
    load_fashion_mnist,
    load_mnist_like,
    load_tiny_imagenet,
    read_idx,
)
from deinforeg_sklearn.datasets.text_csv import load_ag_news_csv, load_dbpedia_csv, load_imdb_csv
from deinforeg_sklearn.datasets.vader import (
    load_vader_movie_reviews,
    load_vader_sentences,
    parse_vader_ground_truth,
)

__all__ = [
    "default_cache",
    "load_ag_news_csv",
    "load_cifar",
    "load_dbpedia_csv",
    "load_fashion_mnist",
    "load_imdb_csv",
    "load_mnist_like",
    "load_tiny_imagenet",
    "load_vader_movie_reviews",
    "load_vader_sentences",
    "parse_vader_ground_truth",
    "read_idx",
]
