"""Cross-validation by patient: no patient's patches on both sides of a fold.

Patches of one patient share slide, stain and scanner, so scoring on patients seen in
training flatters a model. patient_cv picks StratifiedGroupKFold when the classes are
imbalanced (GroupKFold when balanced), and complains clearly when groups are missing.

Run: python examples/grouped_cv.py   (about a minute on a laptop CPU)
"""

import numpy as np

from idcclf import IDCClassifier, load_sample
from idcclf.model_selection import fold_patients, patient_cross_validate, patient_cv

data = load_sample(max_per_class=300)
X, y, groups = data.data, data.target, data.groups

cv = patient_cv(3, y=y, random_state=0)
print(f"splitter: {cv}")
for k, (train_patients, test_patients) in enumerate(fold_patients(cv, X, y, groups)):
    print(f"fold {k}: train {' '.join(train_patients)} | test {' '.join(test_patients)}")

try:
    list(cv.split(X, y))
except ValueError as exc:
    print(f"\nwithout groups: {exc}\n")

clf = IDCClassifier(epochs=2, validation_fraction=0.0, random_state=0)
scores = patient_cross_validate(clf, X, y, groups, cv=cv)
for metric in ("balanced_accuracy", "sensitivity", "specificity", "f1", "roc_auc"):
    values = scores[f"test_{metric}"]
    print(f"{metric:<18} {np.mean(values):.3f} ± {np.std(values):.3f}  folds {np.round(values, 3)}")
