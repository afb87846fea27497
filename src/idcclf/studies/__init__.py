"""Named model-selection studies: one question about CancerNet, one grid search each.

Each study is a parameter grid on :class:`idcclf.IDCClassifier` (or, for ``imbalance``,
on a pipeline that can undersample), searched by :func:`run_study` with
``GridSearchCV`` over folds by patient and five metrics: balanced accuracy (which
picks the best setting), sensitivity, specificity, F1 and ROC AUC. The result holds
a table of mean and standard deviation over folds per setting, with fit times, and
writes it as CSV and Markdown with a plot (PNG).

==================  =================================================================
study               settings compared
==================  =================================================================
``dropout``         block dropout after vs before pooling x rate 0.1, 0.25, 0.5
``batch_norm``      batch normalization on vs off
``learning_rate``   1e-1, 1e-2, 1e-3, 1e-4
``optimizer``       Adagrad vs Adam
``imbalance``       nothing vs class weights vs undersampling the majority
==================  =================================================================

Only the studied knobs change; every other parameter is the same for all settings
(``IDCClassifier`` defaults, :data:`STUDY_DEFAULTS`, then ``base_params``).

Modules: :mod:`~idcclf.studies.registry` (the studies), :mod:`~idcclf.studies.search`
(building and running the search) and :mod:`~idcclf.studies.result`
(:class:`StudyResult`); the plot is :func:`idcclf.plots.plot_study`. Importing this
package loads no scikit-learn, TensorFlow or matplotlib, so that listing the studies
(``idcclf study --help``) stays instant. See ``docs/studies.md``.
"""

from .registry import METRICS, STUDIES, STUDY_DEFAULTS, Study, get_study
from .result import StudyResult
from .search import make_search, run_study, stratified_subset

__all__ = [
    "METRICS",
    "STUDIES",
    "STUDY_DEFAULTS",
    "Study",
    "StudyResult",
    "get_study",
    "make_search",
    "run_study",
    "stratified_subset",
]
