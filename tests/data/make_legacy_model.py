"""Write legacy_model.joblib and legacy_model.npz: a tiny fitted IDCClassifier.

Made once, with the code of commit c0d8271 (before the estimator was split into
modules), and committed: tests/test_estimator.py checks that later code still loads
this pickle and predicts the stored probabilities. The same model was also written
as a pretrained folder (``legacy_pretrained/``) by that code's ``save_pretrained``,
and ``pretrained_folder_proba`` holds what ``load_pretrained`` of that code predicted
from it (the shipped model itself has been retrained since). Rerunning this script with newer
code would defeat that purpose; it is kept to say how the files were made.

    PYTHONPATH=src python tests/data/make_legacy_model.py
"""

from pathlib import Path

import joblib
import numpy as np

from idcclf import IDCClassifier, load_pretrained, load_sample
from idcclf.pretrained import save_pretrained

HERE = Path(__file__).resolve().parent


def _through_pretrained_folder(clf, X):
    folder = HERE / "legacy_pretrained"
    info = {"command": "tests/data/make_legacy_model.py (pretrained folder)"}
    save_pretrained(clf, folder, info=info)
    return load_pretrained(folder).predict_proba(X)


bunch = load_sample(patients=["8863", "8867"])
rng = np.random.default_rng(0)
keep = np.sort(rng.choice(len(bunch.target), size=96, replace=False))
X, y, groups = bunch.data[keep], bunch.target[keep], bunch.groups[keep]
# Augmentation and stain jitter on, so that the pickle holds idcclf's own Keras
# layers too (their registered names are part of what must keep loading).
clf = IDCClassifier(
    filters=(4, 8, 8),
    dense_units=8,
    epochs=1,
    stain_jitter=0.05,
    random_state=0,
).fit(X, y, groups=groups)
X_check = X[:24]
joblib.dump(clf, HERE / "legacy_model.joblib", compress=3)
np.savez_compressed(
    HERE / "legacy_model.npz",
    X=X_check,
    proba=clf.predict_proba(X_check),
    proba_tta=clf.set_params(test_time_augmentation=True).predict_proba(X_check),
    # the same model through a pretrained folder, saved and loaded by that code
    pretrained_folder_proba=_through_pretrained_folder(clf, X_check),
)
