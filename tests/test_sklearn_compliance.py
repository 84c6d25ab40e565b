"""scikit-learn's own estimator checks, for every estimator with default parameters."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from deinforeg_sklearn import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier


def expected_failed_checks(estimator):
    # Every check passes; a check that cannot pass would be listed here with its reason.
    return {}


@parametrize_with_checks(
    [DeInfoRegClassifier(), BackpropClassifier(), SCPLClassifier(), ALClassifier()],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
