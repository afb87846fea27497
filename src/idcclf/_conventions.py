"""What ``IDCClassifier`` adds to scikeras' ``KerasClassifier`` to follow scikit-learn's
conventions: its tags (scikeras 0.13, its last release, predates them), parameters
read from the signature, models saved by older versions, input checked as scikit-learn
checks it (feature names, a column of labels), and no ``partial_fit``."""

from __future__ import annotations

import inspect
import math

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._tags import ClassifierTags
from sklearn.utils.validation import _check_feature_names, check_consistent_length, column_or_1d

from . import _inputs


class ScikitLearnConventions:
    """Mixin, listed before ``KerasClassifier`` among the bases."""

    # scikeras lists every public instance attribute as a parameter; the signature is
    # the contract scikit-learn expects.
    _get_param_names = classmethod(BaseEstimator._get_param_names.__func__)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        tags.non_deterministic = self.random_state is None
        return tags

    def __setstate__(self, state: dict) -> None:
        # A model saved before a parameter existed loads with that parameter's default,
        # and without the fitted attributes added since (None: not recorded).
        for name, parameter in inspect.signature(type(self).__init__).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                state.setdefault(name, parameter.default)
        if "model_" in state:
            for name in ("training_groups_", "input_range_"):
                state.setdefault(name, None)
        super().__setstate__(state)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def __repr__(self) -> str:
        return BaseEstimator.__repr__(self)

    def _validate_data(self, X=None, y=None, reset: bool = False, y_numeric: bool = False):
        """Check ``X`` and ``y``; at fit (``reset``) also learn the patch shape."""
        if y is not None:
            y = np.asarray(y)
            if reset and y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            # scikeras validates y and records its type; X is checked here instead so
            # that images and rows, uint8 and floats, are all accepted after any fit.
            _, y = super()._validate_data(X=None, y=y, reset=reset, y_numeric=y_numeric)
        if X is None:
            return X, y
        _check_feature_names(self, X, reset=reset)
        X = _inputs.check_pixels(X)
        if y is not None:
            check_consistent_length(X, y)
        if reset:
            self.image_shape_ = _inputs.check_training_input(X, y, self.input_shape, self.rescale)
            self.n_features_in_ = X.shape[1] if X.ndim == 2 else math.prod(self.image_shape_)
        return _inputs.as_images(X, self.image_shape_), y

    @property
    def partial_fit(self):
        """Not available: a CancerNet is always trained from scratch by :meth:`fit`."""
        # A property that raises AttributeError hides scikeras' partial_fit from
        # hasattr(), which is how scikit-learn decides whether to call it.
        raise AttributeError(f"{type(self).__name__} has no partial_fit; train with fit")
