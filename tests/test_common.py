"""scikit-learn's estimator checks on IDCClassifier."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from idcclf import IDCClassifier

# The checks feed small tabular data (2 to 10 features, standardized); rows of d values
# become 1 x d single-channel images. A small plain-convolution net without batch norm
# learns those well in a few epochs; the real CancerNet defaults are tested elsewhere.
CHECKED = IDCClassifier(
    input_shape=None,
    filters=(16,),
    convs_per_block=(1,),
    dense_units=16,
    block_dropout=0.0,
    head_dropout=0.0,
    batch_norm=False,
    separable=False,
    rescale=None,
    augment=False,
    optimizer="adam",
    learning_rate=1e-2,
    epochs=20,
    validation_fraction=0.0,
    random_state=0,
)

EXPECTED_FAILED_CHECKS = {
    "check_estimator_tags_renamed": (
        "the scikeras base class defines the pre-1.6 _more_tags; IDCClassifier defines "
        "__sklearn_tags__ itself"
    ),
    "check_mixin_order": (
        "scikeras' KerasClassifier lists BaseEstimator before ClassifierMixin and a "
        "subclass cannot reorder them; the classifier tags are set explicitly instead"
    ),
    "check_sample_weight_equivalence_on_dense_data": (
        "mini-batch gradient descent over shuffled batches is not invariant to repeating "
        "rows, so weights and repetitions give different (equally valid) networks"
    ),
}


@parametrize_with_checks([CHECKED], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
