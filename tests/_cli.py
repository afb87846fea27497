"""Helpers of the command-line tests."""

import json
import shutil
import subprocess
import sys

import pytest

from idcclf.cli import main
from idcclf.datasets import sample_path

#: Python-level names that must never reach a command-line user's error message.
#: What starts every line of the loader's progress on stderr.
PROGRESS = "load_idc: "
PYTHON_NAMES = (
    "Traceback",
    "on_error",
    "validation_fraction",
    "early_stopping",
    "load_idc(",
    "patients=[",
    "memory_map",
    "max_per_class",
    "learning_rate",
    "force=True",
    "size_policy",
)


def run_cli(*args, timeout=600):
    """Run ``python -m idcclf.cli ARGS`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "idcclf.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_mains(*argvs, timeout=300):
    """Run ``main(argv)`` for each argv in one fresh process.

    Returns one ``(status, tensorflow imported)`` pair per argv, and stderr.
    """
    code = (
        "import json, sys\n"
        "from idcclf.cli import main\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    status = main(argv)\n"
        "    print(json.dumps([status, 'tensorflow' in sys.modules]), flush=True)\n"
    )
    argvs = [[str(a) for a in argv] for argv in argvs]
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("[")]
    return [tuple(line) for line in lines], result.stderr


def without_progress(err: str) -> str:
    """``err`` without the loader's progress lines (``load_idc: decoding ...``)."""
    return "".join(line for line in err.splitlines(keepends=True) if not line.startswith(PROGRESS))


def one_line_error(capsys, argv, *expected):
    """Run ``main(argv)`` in this process; check it ends with one error line; return it."""
    argv = [str(a) for a in argv]
    capsys.readouterr()
    status = main(argv)
    err = without_progress(capsys.readouterr().err)
    assert status == 2, err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"idcclf {argv[0]}: error: "), err
    for text in expected:
        assert text in errors[0], errors[0]
    for name in PYTHON_NAMES:
        assert name not in err, err
    return errors[0]


def copy_patients(root, patients, labels=("0", "1"), per_class=4):
    """A patch tree at ``root`` with ``per_class`` patches of ``labels`` of each patient."""
    for patient in patients:
        for label in labels:
            folder = root / patient / label
            folder.mkdir(parents=True)
            for path in sorted((sample_path() / patient / label).glob("*.png"))[:per_class]:
                shutil.copy2(path, folder / path.name)
    return root


def save_tiny_model(folder, patients=("8863", "8867")):
    """A 1-epoch tiny CancerNet of a few hundred real patches, saved as 'idcclf train' does."""
    import joblib

    from idcclf import IDCClassifier
    from idcclf.datasets import load_sample

    bunch = load_sample(patients=list(patients))
    clf = IDCClassifier(
        filters=(4, 8, 8), dense_units=8, epochs=1, augment=False, validation_fraction=0
    ).fit(bunch.data, bunch.target)
    joblib.dump(clf, folder / "model.joblib")
    return folder / "model.joblib"


@pytest.fixture
def small_network(monkeypatch):
    """Make ``idcclf train`` build a tiny CancerNet, so that its fits take seconds."""
    from idcclf.cli import train

    make = train.make_classifier

    def small(args, validation_fraction):
        return make(args, validation_fraction).set_params(filters=(4, 8, 8), dense_units=8)

    monkeypatch.setattr(train, "make_classifier", small)
