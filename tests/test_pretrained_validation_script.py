"""benchmarks/pretrained_validation.py, on tiny models saved from the bundled sample."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from idcclf import IDCClassifier, load_sample
from idcclf.datasets import sample_path
from idcclf.pretrained import CONFIG, save_pretrained

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pretrained_validation.py"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny model fitted on the sample with 20 % of its patients held out, saved twice."""
    bunch = load_sample()
    clf = IDCClassifier(
        filters=(4, 8, 8), dense_units=8, epochs=1, validation_fraction=0.2, random_state=0
    )
    clf.fit(bunch.data, bunch.target, groups=bunch.groups)
    root = tmp_path_factory.mktemp("models")
    for name in ("a", "b"):
        save_pretrained(clf, root / name, info={"command": "test"})
    return clf, bunch, root


def run(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(sample_path()), "--resamples", "50", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_scores_the_validation_patients_and_pairs_two_models(saved, tmp_path):
    clf, bunch, root = saved
    out = tmp_path / "result.json"
    done = run("--folder", str(root / "a"), "--folder", str(root / "b"), "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(out.read_text())
    held_out = sorted(map(str, clf.validation_groups_))
    assert record["patients"] == held_out and len(held_out) >= 2
    rows = np.isin(bunch.groups, held_out)
    assert record["n_patches"] == rows.sum()
    proba = clf.predict_proba(bunch.data[rows])[:, 1]
    truth = bunch.target[rows]
    first, second = record["models"]
    assert first["report"]["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(truth, proba >= 0.5), abs=1e-6
    )
    assert first["report"]["roc_auc"] == pytest.approx(roc_auc_score(truth, proba), abs=1e-4)
    low, high = (first["intervals"]["roc_auc"][key] for key in ("low", "high"))
    assert low <= first["report"]["roc_auc"] <= high
    # The same weights twice: no difference, in every resample.
    for change in second["minus_first"].values():
        assert change["estimate"] == change["low"] == change["high"] == 0
        assert change["higher_in_resamples"] == 0
    assert f"{len(held_out)} validation patients" in done.stdout


def test_models_validated_on_other_patients_are_refused(saved, tmp_path):
    _, _, root = saved
    other = tmp_path / "other"
    other.mkdir()
    for path in (root / "a").iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    config = json.loads((other / CONFIG).read_text())
    config["validation_groups"] = config["validation_groups"][:-1]
    (other / CONFIG).write_text(json.dumps(config))
    done = run("--folder", str(root / "a"), "--folder", str(other))
    assert done.returncode == 2
    assert f"{other} was validated on other patients" in done.stderr


def test_unknown_revision_is_named(tmp_path):
    done = run("--previous", "no-such-revision")
    assert done.returncode == 2
    assert "--previous no-such-revision: git show found no" in done.stderr
