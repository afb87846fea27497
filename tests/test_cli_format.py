"""The command line formats counts and undefined figures with the package's one helper."""

import importlib

import pytest

from idcclf import _format
from idcclf.cli import COMMANDS


def test_plural_knows_patches():
    assert _format.plural(1, "patch", "patches") == "1 patch"
    assert _format.plural(2, "patch", "patches") == "2 patches"
    assert _format.plural(0, "patient") == "0 patients"
    assert _format.plural(3, "bad file") == "3 bad files"
    assert _format.plural(2, "fold", "fold(s)") == "2 fold(s)"


@pytest.mark.parametrize("module", ["_common", "_train_parts", *COMMANDS.values()])
def test_every_command_uses_the_one_plural(module):
    loaded = importlib.import_module(f"idcclf.cli.{module}")
    assert getattr(loaded, "plural", _format.plural) is _format.plural


def test_undefined_headline_figures_are_n_a(capsys):
    from idcclf.cli.evaluate import print_headline

    report = {
        "accuracy": 0.5,
        "balanced_accuracy": float("nan"),
        "sensitivity": None,
        "specificity": 0.25,
        "f1": 0.0,
        "roc_auc": float("nan"),
        "confusion_matrix": [[1, 3], [0, 0]],
    }
    print_headline(report)
    lines = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines()[:6])
    assert lines == {
        "accuracy": "0.5000",
        "balanced_accuracy": "n/a",
        "sensitivity": "n/a",
        "specificity": "0.2500",
        "f1": "0.0000",
        "roc_auc": "n/a",
    }
