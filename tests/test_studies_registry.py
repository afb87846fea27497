"""idcclf.studies.registry: the five named studies, their grids, labels and look-up."""

from __future__ import annotations

import subprocess
import sys

import pytest

from idcclf.studies import STUDIES, Study, get_study
from idcclf.studies.registry import format_param


def test_the_five_studies_and_their_grids():
    assert set(STUDIES) == {"dropout", "batch_norm", "learning_rate", "optimizer", "imbalance"}
    assert get_study("dropout").param_grid() == [
        {"dropout_placement": ["after_pool", "before_pool"], "block_dropout": [0.1, 0.25, 0.5]}
    ]
    assert get_study("learning_rate").param_grid() == [{"learning_rate": [1e-1, 1e-2, 1e-3, 1e-4]}]
    assert get_study("batch_norm").n_settings() == 2
    assert get_study("optimizer").param_grid() == [{"optimizer": ["adagrad", "adam"]}]
    assert get_study("imbalance").n_settings() == 3


def test_unknown_study_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown study 'dropuot'; known studies: batch_norm, "):
        get_study("dropuot")
    with pytest.raises(ValueError, match="known studies"):
        get_study(["dropout"])  # unhashable: still the same clear message
    study = Study("toy", "?", {"optimizer": ["adam"]})
    assert get_study(study) is study


def test_setting_labels():
    dropout = get_study("dropout")
    params = {"block_dropout": 0.25, "dropout_placement": "after_pool"}
    assert dropout.setting_label(params) == "block_dropout=0.25, placement=after_pool"
    imbalance = get_study("imbalance")
    (passthrough, undersampling) = imbalance.param_grid(random_state=0)
    assert imbalance.setting_label({"sampler": "passthrough"}) == "none"
    assert (
        imbalance.setting_label({"sampler": "passthrough", "classifier__class_weight": "balanced"})
        == "class weights"
    )
    assert imbalance.setting_label({"sampler": undersampling["sampler"][0]}) == "undersampling"
    assert format_param(1e-4) == "0.0001" and format_param(None) == "None"
    assert format_param(undersampling["sampler"][0]) == "RandomUnderSampler"


def test_listing_the_studies_loads_no_heavy_library():
    code = (
        "import sys, idcclf.studies\n"
        "print(sorted(m for m in ('sklearn', 'tensorflow', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
