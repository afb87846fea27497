"""Searches on a Dask cluster, and the TensorFlow thread limit of parallel workers."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest

from idcclf import _threads
from idcclf._threads import (
    ENV_VAR,
    limit_tf_threads,
    tf_threads_from_env,
    threads_per_worker,
    worker_tf_threads,
)

TINY = dict(filters=(4, 8, 8), dense_units=8, augment=False, batch_norm=False)
TF_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


@pytest.fixture
def clean_env(monkeypatch):
    """Unset the knob and TensorFlow's variables; whatever a test sets is undone after."""
    for name in (ENV_VAR, *TF_VARS):
        monkeypatch.setenv(name, "1")  # records the original state for teardown
        monkeypatch.delenv(name)


# --------------------------------------------------------------- thread knob


def test_env_knob_is_read_and_checked(clean_env, monkeypatch):
    assert tf_threads_from_env() is None
    monkeypatch.setenv(ENV_VAR, " 3 ")
    assert tf_threads_from_env() == 3
    assert threads_per_worker(8) == 3  # the knob wins over the core count
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv(ENV_VAR, bad)
        with pytest.raises(ValueError, match=ENV_VAR):
            tf_threads_from_env()


def test_threads_per_worker_shares_the_cores(clean_env):
    cores = len(os.sched_getaffinity(0))
    assert threads_per_worker(1) == cores
    assert threads_per_worker(cores) == 1
    assert threads_per_worker(10 * cores) == 1


def test_worker_tf_threads_sets_and_restores_the_environment(clean_env, monkeypatch):
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "7")
    with worker_tf_threads(2) as n:
        assert n == 2
        assert os.environ[ENV_VAR] == "2"
        assert all(os.environ[name] == "2" for name in TF_VARS)
    assert ENV_VAR not in os.environ and "TF_NUM_INTRAOP_THREADS" not in os.environ
    assert os.environ["TF_NUM_INTEROP_THREADS"] == "7"
    with worker_tf_threads(None) as n:
        assert n is None and ENV_VAR not in os.environ
    with pytest.raises(ValueError, match="positive integer"):
        with worker_tf_threads(0):
            pass


def test_limit_tf_threads_reaches_tensorflow_in_a_fresh_process(clean_env):
    # The pools can only be sized before TensorFlow's runtime starts: check in a new
    # process, as a worker would do it, that the limit is what TensorFlow then uses.
    code = (
        "import idcclf._threads as t, tensorflow as tf\n"
        "assert t.limit_tf_threads() == 2\n"
        "tf.constant(1.0) + 1.0\n"
        "th = tf.config.threading\n"
        "print(th.get_intra_op_parallelism_threads(), th.get_inter_op_parallelism_threads())\n"
    )
    env = {**os.environ, ENV_VAR: "2", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["2", "2"]


def test_limit_tf_threads_without_a_setting_changes_nothing(clean_env):
    assert limit_tf_threads() is None
    assert not any(name in os.environ for name in TF_VARS)


def test_limit_tf_threads_warns_once_tensorflow_runs(clean_env):
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # the runtime of this process is running now
    current = tf.config.threading.get_intra_op_parallelism_threads()
    with pytest.warns(RuntimeWarning, match="already running"):
        assert limit_tf_threads(current + 3) is None
    assert os.environ["TF_NUM_INTRAOP_THREADS"] == str(current + 3)  # for child processes


# --------------------------------------------------------------- Dask


@pytest.fixture(scope="module")
def sample():
    from idcclf import load_sample

    bunch = load_sample(max_per_class=40, random_state=0)
    return bunch.data, bunch.target, bunch.groups


def test_search_on_a_dask_cluster_matches_a_local_one(sample):
    """The same search on 2 Dask worker processes gives the same kind of result."""
    distributed = pytest.importorskip("distributed", reason="needs the 'dask' extra")
    from idcclf.studies import run_study

    X, y, groups = sample
    kwargs = dict(cv=2, epochs=1, base_params=TINY, verbose=0)
    grid = {"optimizer": ["adagrad", "adam"]}
    local = run_study("optimizer", X, y, groups, grid=grid, **kwargs)

    with warnings.catch_warnings():
        # The cluster's start-up notices (e.g. about the dashboard port) are not under test.
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
        )
    with cluster, distributed.Client(cluster) as client:
        client.register_plugin(_threads.TFThreadsPlugin(1))
        # The plugin ran in both worker processes before any fit.
        limits = client.run(lambda: os.environ.get("TF_NUM_INTRAOP_THREADS"))
        assert sorted(limits.values()) == ["1", "1"]
        with distributed.get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
            on_dask = run_study("optimizer", X, y, groups, grid=grid, n_jobs=-1, **kwargs)
        workers = set(client.scheduler_info()["workers"])

    # The fits ran in the worker processes, both of them.
    assert {task["worker"] for task in tasks.data} == workers and len(workers) == 2
    ours, theirs = local.search, on_dask.search
    assert set(theirs.cv_results_) == set(ours.cv_results_)
    assert theirs.cv_results_["params"] == ours.cv_results_["params"]
    assert type(theirs.best_params_) is type(ours.best_params_) is dict
    assert theirs.best_params_.keys() == ours.best_params_.keys()
    assert [row["setting"] for row in on_dask.table] == [row["setting"] for row in local.table]
    # Scores are not compared: TensorFlow with 1 thread per worker sums in another order
    # than with 2 threads here, which moves 1-epoch toy networks noticeably.
    for metric in ("balanced_accuracy", "roc_auc"):
        scores = theirs.cv_results_[f"mean_test_{metric}"]
        assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
