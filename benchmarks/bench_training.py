"""Training and prediction throughput, measured side by side in one run.

Compares, on the same real patches and the same machine:

1. the tutorial's pipeline: the legacy ``ImageDataGenerator.flow_from_directory`` reading
   PNG folders at 48x48, batch 32, Adagrad 1e-2, class weights, rotation / zoom / shift /
   shear / flip augmentation;
2. ``IDCClassifier.fit`` with its augmentation on (same CancerNet, epochs, batch size);
3. plain ``keras.Model.fit`` on in-memory arrays without augmentation (the compute bound);
4. ``IDCClassifier.fit`` without augmentation (wrapper overhead vs 3);
5. ``IDCClassifier.predict_proba`` vs plain ``keras.Model.predict``.

Each training run also reports the balanced accuracy on held-out patients after its
epochs, so that no speed is bought with accuracy unnoticed.

Usage::

    python benchmarks/bench_training.py [--data ../shared/data/idc] [--n 4096] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "idc")
    parser.add_argument("--n", type=int, default=4096, help="training patches (default 4096)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--skip-tutorial", action="store_true")
    return parser.parse_args()


def balanced_accuracy(y_true, proba) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y_true, np.asarray(proba).argmax(axis=1)))


def tutorial_pipeline(files, labels, val_x, val_y, epochs, batch_size):
    """The tutorial's training loop, PNG folders through ImageDataGenerator."""
    import keras
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    from idcclf import build_cancernet

    with tempfile.TemporaryDirectory() as tmp:
        for i, (path, label) in enumerate(zip(files, labels, strict=True)):
            folder = Path(tmp, "training", str(label))
            folder.mkdir(parents=True, exist_ok=True)
            os.symlink(path, folder / f"{i:06d}.png")
        augment = ImageDataGenerator(
            rescale=1 / 255.0, rotation_range=20, zoom_range=0.05, width_shift_range=0.1,
            height_shift_range=0.1, shear_range=0.05, horizontal_flip=True,
            vertical_flip=True, fill_mode="nearest",
        )
        flow = augment.flow_from_directory(
            Path(tmp, "training"), class_mode="categorical", target_size=(48, 48),
            color_mode="rgb", shuffle=True, batch_size=batch_size,
        )
        counts = np.bincount(labels)
        class_weight = {k: counts.max() / c for k, c in enumerate(counts)}
        model = build_cancernet((48, 48, 3), rescale=None)
        model.compile(keras.optimizers.Adagrad(1e-2), "categorical_crossentropy")
        start = time.perf_counter()
        model.fit(flow, epochs=epochs, class_weight=class_weight, verbose=0)
        seconds = time.perf_counter() - start
    small = keras.ops.image.resize(val_x.astype("float32") / 255.0, (48, 48))
    return len(files) * epochs / seconds, balanced_accuracy(val_y, model.predict(small, verbose=0))


def main() -> int:
    args = parse_args()
    if not args.data.is_dir():
        print(f"no data at {args.data}: pass --data", file=sys.stderr)
        return 2
    import keras

    from idcclf import IDCClassifier, build_cancernet, load_idc

    bunch = load_idc(args.data)
    patients = np.unique(bunch.groups)
    val_patients = patients[::5]  # every fifth patient is held out for the accuracy check
    is_val = np.isin(bunch.groups, val_patients)
    rng = np.random.default_rng(0)
    train = rng.choice(np.flatnonzero(~is_val), size=min(args.n, (~is_val).sum()), replace=False)
    val = rng.choice(np.flatnonzero(is_val), size=min(2000, is_val.sum()), replace=False)
    X, y = bunch.data[train], bunch.target[train]
    val_x, val_y = bunch.data[val], bunch.target[val]
    n, epochs, bs = len(X), args.epochs, args.batch_size
    print(f"{n} training patches, {len(val)} validation patches from {len(val_patients)} "
          f"held-out patients, {epochs} epochs, batch {bs}, {os.cpu_count()} CPUs")

    results = {}
    if not args.skip_tutorial:
        files = [str(args.data / f) for f in bunch.filenames[train]]
        results["tutorial ImageDataGenerator (PNG, aug)"] = tutorial_pipeline(
            files, y, val_x, val_y, epochs, bs
        )

    def fit_idc(augment: bool):
        clf = IDCClassifier(epochs=epochs, batch_size=bs, class_weight="balanced",
                            augment=augment, validation_fraction=0, random_state=0)
        start = time.perf_counter()
        clf.fit(X, y)
        seconds = time.perf_counter() - start
        return clf, (n * epochs / seconds, balanced_accuracy(val_y, clf.predict_proba(val_x)))

    clf, results["IDCClassifier.fit (aug)"] = fit_idc(augment=True)

    model = build_cancernet()
    model.compile(keras.optimizers.Adagrad(1e-2), "sparse_categorical_crossentropy")
    weights = np.where(y == 1, (y == 0).sum() / (y == 1).sum(), 1.0).astype("float32")
    start = time.perf_counter()
    model.fit(X, y, sample_weight=weights, epochs=epochs, batch_size=bs, verbose=0)
    plain_speed = n * epochs / (time.perf_counter() - start)
    results["plain keras fit (in memory, no aug)"] = (
        plain_speed, balanced_accuracy(val_y, model.predict(val_x, verbose=0)),
    )
    _, results["IDCClassifier.fit (no aug)"] = fit_idc(augment=False)

    print(f"\n{'training':<42}{'img/s':>10}{'val bal. acc.':>15}")
    for name, (speed, bal_acc) in results.items():
        print(f"{name:<42}{speed:>10.0f}{bal_acc:>15.3f}")
    ours = results["IDCClassifier.fit (aug)"][0]
    if "tutorial ImageDataGenerator (PNG, aug)" in results:
        tutorial = results["tutorial ImageDataGenerator (PNG, aug)"][0]
        print(f"ratio IDCClassifier (aug) / tutorial pipeline: {ours / tutorial:.2f}x")
    print(f"ratio IDCClassifier (aug) / plain keras (no aug): {ours / plain_speed:.2f}x")
    overhead = 1 - results["IDCClassifier.fit (no aug)"][0] / plain_speed
    print(f"wrapper overhead vs plain keras, same input, no aug: {100 * overhead:+.1f}%")

    data = bunch.data[: min(len(bunch.data), 8192)]
    clf.predict_proba(data[:256])  # trace once, as Keras does for its own predict below
    clf.model_.predict(data[:256], verbose=0)
    start = time.perf_counter()
    clf.predict_proba(data)
    ours = len(data) / (time.perf_counter() - start)
    start = time.perf_counter()
    clf.model_.predict(data, verbose=0)
    plain = len(data) / (time.perf_counter() - start)
    print(f"\n{'prediction':<42}{'img/s':>10}")
    print(f"{'IDCClassifier.predict_proba':<42}{ours:>10.0f}")
    print(f"{'plain keras Model.predict (batch 32)':<42}{plain:>10.0f}")
    print(f"ratio predict_proba / keras predict: {ours / plain:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
