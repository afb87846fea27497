"""Balance the classes by undersampling, only ever on the training patients.

The reference recipe: drop majority (no IDC) patches at random until both classes are
even, then train with Adam, learning rate 1e-4, batch 20 (20 epochs in the recipe, 3
here to run in about a minute on a laptop CPU). imbalanced-learn samplers need rows, so
the pipeline's first step flattens (n, 50, 50, 3) images to (n, 7500) rows, a view of
the same pixels.

Run: python examples/undersampling_pipeline.py
"""

import numpy as np

from idcclf import load_sample
from idcclf.metrics import evaluation_report, format_report
from idcclf.pipelines import flatten_patches, make_undersampling_pipeline
from idcclf.splits import patient_split

data = load_sample()
train, _, test = patient_split(data.groups, data.target, train_size=0.75, val_size=0.0)
X_train, y_train = data.data[train], data.target[train]

# Images or rows: the pipeline flattens itself; flatten_patches shows it is a view.
rows = flatten_patches(X_train)
print(f"rows {rows.shape}, a view of the images: {np.shares_memory(rows, X_train)}")

pipe = make_undersampling_pipeline(random_state=0)
pipe.set_params(classifier__epochs=3)  # the recipe trains 20 epochs
pipe.fit(X_train, y_train)

kept = pipe.named_steps["sampler"].sample_indices_
print(
    f"training patches per class {np.bincount(y_train).tolist()}, "
    f"after undersampling {np.bincount(y_train[kept]).tolist()}"
)
# Predictions see every test patch: sampling happens in fit only.
proba = pipe.predict_proba(data.data[test])[:, 1]
print(f"\ntest patients {' '.join(sorted(set(data.groups[test])))}, {len(test)} patches")
print(format_report(evaluation_report(data.target[test], proba)))
