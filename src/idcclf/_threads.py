"""Limit TensorFlow's thread pools so that parallel fits do not oversubscribe cores.

TensorFlow sizes its intra-op and inter-op thread pools from the number of cores when
its runtime starts, in every process. Two fits running side by side (``n_jobs=2``, or
two Dask workers on one machine) then each start a pool as large as the machine and
fight over the cores. The pools can only be sized *before* the runtime starts, so the
limit must be set in each worker process before it runs its first TensorFlow op.

The knob is the environment variable ``IDCCLF_TF_THREADS`` (a positive integer):

- :func:`limit_tf_threads` with no argument reads it;
- :func:`idcclf.studies.run_study` reads it to size the pools of its worker processes
  (default: the cores divided by the number of parallel fits);
- ``TFThreadsPlugin`` (a Dask ``WorkerPlugin``) applies it, or an explicit count, in
  every Dask worker.

Two mechanisms are used because neither reaches every case:

- TensorFlow reads ``TF_NUM_INTRAOP_THREADS`` and ``TF_NUM_INTEROP_THREADS`` when its
  runtime starts. Setting them in ``os.environ`` reaches child processes that start
  afterwards (joblib's loky workers, Dask nanny-spawned workers) and this process if
  TensorFlow has not run yet.
- ``tf.config.threading`` sets the pools of a process that has imported TensorFlow but
  not yet run an op (a Dask worker that unpickled an estimator).
"""

from __future__ import annotations

import contextlib
import numbers
import os
import sys
import warnings
from collections.abc import Iterator

#: Environment variable holding the number of TensorFlow threads per process.
ENV_VAR = "IDCCLF_TF_THREADS"

# Read by TensorFlow's runtime at start-up (tensorflow/core/common_runtime/process_util.cc).
_TF_ENV_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")

__all__ = [
    "ENV_VAR",
    "TFThreadsPlugin",  # noqa: F822  (built on first access, see __getattr__)
    "cpu_count",
    "limit_tf_threads",
    "tf_threads_from_env",
    "threads_per_worker",
    "worker_tf_threads",
]


def _check_count(n, source: str) -> int:
    if isinstance(n, str):
        n = n.strip()
        count = int(n) if n.isdigit() else 0
    elif isinstance(n, numbers.Integral) and not isinstance(n, bool):
        count = int(n)
    else:
        count = 0
    if count < 1:
        raise ValueError(f"{source} must be a positive integer, got {n!r}")
    return count


def tf_threads_from_env() -> int | None:
    """Return the thread count set in ``IDCCLF_TF_THREADS``, or None when unset.

    Raises
    ------
    ValueError
        If the variable is set to something other than a positive integer.
    """
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return None
    return _check_count(value, f"environment variable {ENV_VAR}")


def threads_per_worker(n_workers: int) -> int:
    """Threads per parallel fit that keep ``n_workers`` fits within this machine's cores.

    ``IDCCLF_TF_THREADS`` wins when set; otherwise the usable cores are divided among
    the workers (at least 1 each).

    Parameters
    ----------
    n_workers : int
        Fits that run at the same time on this machine.

    Returns
    -------
    int
    """
    from_env = tf_threads_from_env()
    if from_env is not None:
        return from_env
    return max(1, cpu_count() // max(1, int(n_workers)))


def cpu_count() -> int:
    """The cores this process may use (container and ``taskset`` limits included).

    That is what a pool can keep busy, unlike ``os.cpu_count()``, the machine's total.
    """
    if hasattr(os, "process_cpu_count"):  # Python >= 3.13
        n = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    else:
        n = os.cpu_count()
    return max(1, n or 1)


def limit_tf_threads(n: int | None = None) -> int | None:
    """Limit this process's TensorFlow intra-op and inter-op pools to ``n`` threads.

    Call it before TensorFlow runs its first op in the process (in a worker initializer
    or plugin); child processes started afterwards inherit the limit.

    Parameters
    ----------
    n : int or None, default=None
        Threads per pool. None reads ``IDCCLF_TF_THREADS``; when that is unset too,
        nothing is changed.

    Returns
    -------
    int or None
        The limit in force, or None when nothing was set.

    Warns
    -----
    RuntimeWarning
        If TensorFlow already runs in this process with other pool sizes: they can no
        longer change (child processes still get the limit).
    """
    n = tf_threads_from_env() if n is None else _check_count(n, "n")
    if n is None:
        return None
    for name in _TF_ENV_VARS:
        os.environ[name] = str(n)
    # Only touch TensorFlow if it is already imported: importing it here would cost
    # seconds in processes that never train (and the variables above suffice there).
    if "tensorflow" in sys.modules:
        threading = sys.modules["tensorflow"].config.threading
        try:
            threading.set_intra_op_parallelism_threads(n)
            threading.set_inter_op_parallelism_threads(n)
        except RuntimeError:
            current = (
                threading.get_intra_op_parallelism_threads(),
                threading.get_inter_op_parallelism_threads(),
            )
            if current != (n, n):
                warnings.warn(
                    f"TensorFlow is already running in this process; its thread pools "
                    f"cannot be limited to {n} any more (call limit_tf_threads before "
                    "the first fit)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return None
    return n


@contextlib.contextmanager
def worker_tf_threads(n: int | None) -> Iterator[int | None]:
    """Make worker processes started inside the block use ``n`` TensorFlow threads.

    Sets ``IDCCLF_TF_THREADS`` and TensorFlow's own variables for the duration and
    restores the previous environment afterwards. Workers inherit the environment when
    they start, so a pool of processes that already exists (joblib reuses its loky
    workers between calls) keeps the limit it started with.

    Parameters
    ----------
    n : int or None
        Threads per worker; None leaves the environment alone.
    """
    if n is None:
        yield None
        return
    n = _check_count(n, "n")
    names = (ENV_VAR, *_TF_ENV_VARS)
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name in names:
            os.environ[name] = str(n)
        yield n
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _make_plugin_class():
    from distributed import WorkerPlugin

    class TFThreadsPlugin(WorkerPlugin):
        """Dask worker plugin that limits TensorFlow's threads in every worker.

        Register it before submitting fits: ``client.register_plugin(TFThreadsPlugin(1))``.
        It runs in each worker as it starts (and in workers that join later), before
        the worker trains anything.

        Parameters
        ----------
        n_threads : int or None, default=None
            Threads per worker process. None reads ``IDCCLF_TF_THREADS`` in the worker
            and falls back to 1, since the parallelism comes from running fits on
            several workers at once.
        """

        name = "idcclf-tf-threads"

        def __init__(self, n_threads: int | None = None):
            self.n_threads = None if n_threads is None else _check_count(n_threads, "n_threads")

        def setup(self, worker) -> None:
            n = self.n_threads or tf_threads_from_env() or 1
            limit_tf_threads(n)

    TFThreadsPlugin.__module__ = __name__
    TFThreadsPlugin.__qualname__ = "TFThreadsPlugin"
    return TFThreadsPlugin


def __getattr__(name: str):
    # The plugin subclasses a class of the optional dask.distributed; building it on
    # first access keeps `import idcclf._threads` free of that import, and putting it
    # in the module globals lets workers unpickle it by reference.
    if name == "TFThreadsPlugin":
        try:
            cls = _make_plugin_class()
        except ImportError as exc:
            raise ImportError(
                "TFThreadsPlugin needs dask.distributed: pip install 'idcclf[dask]'"
            ) from exc
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
