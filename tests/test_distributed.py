"""predict_patients: per-patient scoring in this process and on a Dask cluster."""

from __future__ import annotations

import os
import shutil
import signal
import time
import warnings

import joblib
import numpy as np
import pytest

from idcclf import load_idc, predict_patients
from idcclf.datasets import sample_path

PATIENTS = sorted(p.name for p in sample_path().iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def model():
    """A tiny CancerNet fitted for one epoch: cheap to ship and to run in every worker."""
    from idcclf import IDCClassifier, load_sample

    X, y = load_sample(max_per_class=100, random_state=0, return_X_y=True)
    params = dict(filters=(4, 8, 8), dense_units=8, epochs=1, validation_fraction=0)
    return IDCClassifier(**params, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def expected(model):
    """Single-process predict_proba of each sample patient, loaded whole by load_idc."""
    out = {}
    for patient in PATIENTS:
        bunch = load_idc(sample_path(), patients=[patient], cache=False)
        out[patient] = (bunch, model.predict_proba(bunch.data))
    return out


def assert_matches(results, expected, exact=True):
    assert sorted(r.patient for r in results) == PATIENTS  # each patient exactly once
    for r in results:
        bunch, proba = expected[r.patient]
        np.testing.assert_array_equal(r.filenames, bunch.filenames)
        np.testing.assert_array_equal(r.coords, bunch.coords)
        np.testing.assert_array_equal(r.target, bunch.target)
        if exact:
            np.testing.assert_array_equal(r.proba, proba)
        else:  # other processes may run TensorFlow with other thread pools
            np.testing.assert_allclose(r.proba, proba, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- local


def test_local_run_equals_predict_proba(model, expected, tmp_path):
    results = list(predict_patients(model, sample_path(), out=tmp_path / "out"))
    assert [r.patient for r in results] == PATIENTS  # in order without a client
    assert_matches(results, expected)
    # Batches that are not a multiple of the network's inference batch (64) group the
    # patches differently, which moves the last bits of float32 sums only.
    assert_matches(list(predict_patients(model, sample_path(), batch_size=50)), expected, False)
    # One CSV per patient, written as the patient finished.
    first = results[0]
    lines = (tmp_path / "out" / f"{first.patient}.csv").read_text().splitlines()
    assert lines[0] == "filename,x,y,label,probability"
    assert len(lines) == len(first) + 1
    name, x, y, label, p = lines[1].split(",")
    assert (name, int(x), int(y), int(label)) == (
        first.filenames[0],
        *first.coords[0],
        first.target[0],
    )
    assert float(p) == pytest.approx(float(first.idc_proba[0]), rel=1e-7)
    assert sorted(f.stem for f in (tmp_path / "out").iterdir()) == PATIENTS


def test_model_file_and_patient_folder_list(model, expected, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    folders = [sample_path() / p for p in PATIENTS[:2]]
    results = list(predict_patients(path, folders))
    assert [r.patient for r in results] == PATIENTS[:2]
    for r in results:
        np.testing.assert_array_equal(r.proba, expected[r.patient][1])
        assert r.folder == str(sample_path() / r.patient)


def test_bad_inputs_are_named_before_any_work(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        predict_patients(model, tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match="neither a patient folder"):
        predict_patients(model, tmp_path / "flat")
    twice = [sample_path(), sample_path() / PATIENTS[0]]
    with pytest.raises(ValueError, match=f"patient '{PATIENTS[0]}' is given twice"):
        predict_patients(model, twice)
    with pytest.raises(ValueError, match="batch_size"):
        predict_patients(model, sample_path(), batch_size=0)
    (tmp_path / "junk.joblib").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="junk.joblib: not a readable model"):
        predict_patients(tmp_path / "junk.joblib", sample_path())
    from sklearn.exceptions import NotFittedError

    from idcclf import IDCClassifier

    with pytest.raises(NotFittedError):
        predict_patients(IDCClassifier(), sample_path())


def test_a_corrupt_patch_is_named(model, tmp_path):
    patient = tmp_path / PATIENTS[0]
    shutil.copytree(sample_path() / PATIENTS[0], patient)
    victim = sorted((patient / "0").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.raises(ValueError, match=victim.name):
        list(predict_patients(model, patient))


# --------------------------------------------------------------------------- Dask


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed", reason="needs the 'dask' extra")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # start-up notices (dashboard port) are not tested
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        )
    with cluster, distributed.Client(cluster) as client:
        yield cluster, client


def _model_loads():
    import idcclf.distributed

    return idcclf.distributed._model_loads


def test_cluster_run_equals_single_process_and_loads_once(model, expected, cluster):
    distributed = pytest.importorskip("distributed")
    _, client = cluster
    with distributed.get_task_stream(client) as tasks:
        results = list(predict_patients(model, sample_path(), client=client, batch_size=64))
    assert_matches(results, expected, exact=False)
    ran_on = {t["worker"] for t in tasks.data if "idcclf-predict" in str(t["key"])}
    assert len(ran_on) == 2  # both workers scored patients...
    loads = client.run(_model_loads)
    assert sorted(loads.values()) == [1, 1]  # ...and each deserialized the model once
    # The run unregisters its plugin.
    plugins = client.run(lambda dask_worker: list(dask_worker.plugins))
    assert not any(n.startswith("idcclf-model") for names in plugins.values() for n in names)


def test_cli_scheduler_prints_what_the_local_cli_prints(model, expected, cluster, tmp_path, capsys):
    from idcclf.cli import main

    local_cluster, _ = cluster
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    folders = [str(sample_path() / p) for p in PATIENTS[:3]]
    assert main(["predict", str(path), *folders]) == 0
    local = capsys.readouterr().out.splitlines()
    address = local_cluster.scheduler_address
    assert main(["predict", "--scheduler", address, str(path), *folders]) == 0
    remote = capsys.readouterr().out.splitlines()
    assert remote[0] == local[0] == "probability\tprediction\tfile"
    assert len(local) == 1 + sum(len(expected[p][1]) for p in PATIENTS[:3])
    assert sorted(remote[1:]) == sorted(local[1:])


def test_a_worker_killed_mid_run_loses_no_patient(model, expected, cluster):
    _, client = cluster
    pids = client.run(os.getpid)
    results, victim = [], None
    for result in predict_patients(model, sample_path(), client=client, batch_size=16):
        results.append(result)
        if victim is None:
            # Kill a worker while it holds patients it has not returned yet.
            deadline = time.monotonic() + 10
            while victim is None and time.monotonic() < deadline:
                busy = {w: tasks for w, tasks in client.processing().items() if tasks}
                victim = next(iter(busy), None)
            assert victim is not None, "no worker was busy: nothing to kill"
            os.kill(pids[victim], signal.SIGKILL)
    assert_matches(results, expected, exact=False)
    assert victim not in client.scheduler_info()["workers"]
