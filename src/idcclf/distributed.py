"""Score an archive of patient folders, one task per patient, locally or on Dask.

:func:`predict_patients` walks ``<root>/<patient>/<0|1>/*.png`` archives and yields
one :class:`PatientPrediction` per patient. Given a Dask client, every patient is a
task: the model travels once to each worker (in a worker plugin, which the scheduler
also hands to workers that join or restart later) and is deserialized once per worker
process; a task decodes its patient's PNGs ``batch_size`` at a time, so a worker's
memory does not grow with the archive or the patient, and sends back only
probabilities, coordinates and file names. Without a client the same function runs in
this process, so both give the same figures. ``dask.distributed`` is optional
(``pip install 'idcclf[dask]'``); it is imported only when a client is used.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._archive import check_model, coords_of, patient_files, patient_folders
from ._io import atomic_write_text
from .standardize import normalizes_stains

__all__ = ["PatientPrediction", "predict_patients"]

#: Patches decoded and predicted at once by a task (about 3.8 MB of pixels).
DEFAULT_BATCH_SIZE = 512
#: Models a worker process keeps deserialized (least recently used dropped first).
_MAX_CACHED_MODELS = 2

# Worker-process state: the serialized models delivered by the plugin (with how many
# registered plugins hold each) and the models deserialized from them.
_LOCK = threading.Lock()
_PAYLOADS: dict[str, list] = {}
_MODELS: OrderedDict[str, Any] = OrderedDict()
#: Models deserialized in this process; tests read it to check "once per worker".
_model_loads = 0


@dataclass(frozen=True)
class PatientPrediction:
    """The predictions for one patient folder.

    Attributes
    ----------
    patient : str
        The patient folder's name.
    folder : str
        The patient folder, as given (or as found under the root given).
    proba : ndarray of shape (n_patches, n_classes)
        ``model.predict_proba`` of each patch; the IDC class is the last column.
    coords : ndarray of shape (n_patches, 2), int64
        ``(x, y)`` from the ``_x<X>_y<Y>`` part of each file name; -1 if absent.
    filenames : ndarray of shape (n_patches,), str
        ``<patient>/<class>/<file>``, in class then file-name order (as ``load_idc``).
    target : ndarray of shape (n_patches,), int64
        The class folder of each patch (0 = no IDC, 1 = IDC).
    """

    patient: str
    folder: str
    proba: np.ndarray
    coords: np.ndarray
    filenames: np.ndarray
    target: np.ndarray

    @property
    def idc_proba(self) -> np.ndarray:
        """IDC probability of each patch (the last column of ``proba``)."""
        return self.proba[:, -1]

    def __len__(self) -> int:
        return len(self.filenames)


# --------------------------------------------------------------------------- scoring


def _score_patient(
    model, patient: str, folder: Path, batch_size: int, size_policy: str, n_jobs: int | None
) -> PatientPrediction:
    """Predict one patient folder, decoding ``batch_size`` patches at a time.

    A model that normalizes stains measures them over all of the patient's patches,
    so it gets the whole patient at once.
    """
    from .datasets import load_patches

    files, labels = patient_files(folder)
    whole_patient = normalizes_stains(model)
    step = max(len(files), 1) if whole_patient else batch_size
    probas = []
    for start in range(0, len(files), step):
        chunk = load_patches(files[start : start + step], size_policy=size_policy, n_jobs=n_jobs)
        patients = {"groups": np.full(len(chunk), patient)} if whole_patient else {}
        probas.append(np.asarray(model.predict_proba(chunk, **patients)))
    n_classes = len(getattr(model, "classes_", (0, 1)))
    proba = np.concatenate(probas) if probas else np.empty((0, n_classes), np.float32)
    return PatientPrediction(
        patient=patient,
        folder=str(folder),
        proba=proba,
        coords=coords_of(f.name for f in files),
        filenames=np.array([f"{patient}/{f.parent.name}/{f.name}" for f in files], dtype=str),
        target=np.array(labels, dtype=np.int64),
    )


def _worker_model(key: str):
    """The model delivered under ``key``, deserialized at most once in this process."""
    global _model_loads
    with _LOCK:
        model = _MODELS.get(key)
        if model is not None:
            _MODELS.move_to_end(key)
            return model
        held = _PAYLOADS.get(key)
        if held is None:
            raise RuntimeError(
                f"model {key[:12]} was not delivered to this worker (its plugin is not "
                "registered); use predict_patients, which registers it"
            )
        import joblib

        with warnings.catch_warnings():
            # Keras notes that the optimizer's slots are not restored: prediction
            # never uses them.
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            model = joblib.load(io.BytesIO(held[0]))
        _model_loads += 1
        _MODELS[key] = model
        while len(_MODELS) > _MAX_CACHED_MODELS:
            _MODELS.popitem(last=False)
        return model


def _score_on_worker(
    key: str, patient: str, folder: str, batch_size: int, size_policy: str, n_jobs: int | None
) -> PatientPrediction:
    return _score_patient(
        _worker_model(key), patient, Path(folder), batch_size, size_policy, n_jobs
    )


def _make_plugin_class():
    from distributed import WorkerPlugin

    class ModelPlugin(WorkerPlugin):
        """Hands a serialized model to every worker, including ones that join later."""

        def __init__(self, key: str, payload: bytes):
            self.key = key
            self.payload = payload

        def setup(self, worker) -> None:
            # Only the bytes: setup runs in the worker's event loop, which must not
            # block on TensorFlow; the first task deserializes them.
            with _LOCK:
                held = _PAYLOADS.setdefault(self.key, [self.payload, 0])
                held[1] += 1

        def teardown(self, worker) -> None:
            with _LOCK:
                held = _PAYLOADS.get(self.key)
                if held is not None:
                    held[1] -= 1
                    if held[1] <= 0:
                        del _PAYLOADS[self.key]

    ModelPlugin.__module__ = __name__
    ModelPlugin.__qualname__ = "ModelPlugin"
    return ModelPlugin


def _plugin_class():
    # Built on first use so that importing this module does not import distributed;
    # kept in the module globals, so that workers unpickle it by reference.
    if "ModelPlugin" not in globals():
        globals()["ModelPlugin"] = _make_plugin_class()
    return globals()["ModelPlugin"]


def __getattr__(name: str):
    if name == "ModelPlugin":
        return _plugin_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- driver


def _write_csv(result: PatientPrediction, out: Path) -> Path:
    lines = ["filename,x,y,label,probability"]
    for name, (x, y), label, p in zip(
        result.filenames, result.coords, result.target, result.idc_proba, strict=True
    ):
        lines.append(f"{name},{x},{y},{label},{p:.9g}")
    return atomic_write_text(out / f"{result.patient}.csv", "\n".join(lines) + "\n")


def _stream_on_cluster(client, model, folders, options, retries):
    """Yield each patient's result as its task on ``client`` finishes, the model sent once."""
    import joblib
    from distributed import as_completed

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    payload = buffer.getvalue()
    key = hashlib.sha256(payload).hexdigest()
    token = uuid.uuid4().hex[:8]
    plugin_name = f"idcclf-model-{key[:12]}-{token}"
    client.register_plugin(_plugin_class()(key, payload), name=plugin_name)
    futures = {}
    try:
        for patient, folder in folders:
            future = client.submit(
                _score_on_worker, key, patient, str(folder.resolve()), *options,
                key=f"idcclf-predict-{patient}-{token}", retries=retries, pure=False,
            )  # fmt: skip
            futures[future] = folder
        for future in as_completed(list(futures)):
            folder = futures.pop(future)
            result = future.result()
            future.release()  # the worker may forget it: bounded memory there too
            yield replace(result, folder=str(folder))
    finally:
        if futures:
            client.cancel(list(futures))
        try:
            client.unregister_worker_plugin(plugin_name)
        except Exception:  # a closed client or a scheduler gone: nothing left to undo
            pass


def predict_patients(
    model,
    roots,
    *,
    client=None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    out: str | os.PathLike | None = None,
    retries: int = 2,
    size_policy: str = "pad",
    n_jobs: int | None = 1,
) -> Iterator[PatientPrediction]:
    """Predict every patch of every patient folder, one patient at a time.

    Parameters
    ----------
    model : str, path-like, fitted estimator or None
        A model file written with joblib (``idcclf train``), a fitted estimator with
        ``predict_proba`` (e.g. :class:`idcclf.IDCClassifier`), or None for the
        bundled pretrained model.
    roots : str, path-like or list of them
        Archive folders laid out as ``<root>/<patient>/<0|1>/*.png``, and/or patient
        folders (folders with a ``0`` or ``1`` sub-folder). Patient names must be
        unique across them.
    client : distributed.Client, str or None, default=None
        Dask client, or a scheduler address to connect to (and disconnect from at the
        end). None runs every patient in this process, in order.
    batch_size : int, default=512
        Patches a task decodes and predicts at once: the memory of a task is about
        ``batch_size * 7,500`` bytes of pixels plus the network's activations,
        whatever the patient's size. A model with ``normalize_stains=True`` measures
        each patient's stains over all of its patches, so it is given a whole patient
        at once: its memory follows the largest patient (about 7,500 bytes a patch),
        still not the archive's size.
    out : str, path-like or None, default=None
        Folder where each patient's result is also written, atomically, as
        ``<out>/<patient>.csv`` (``filename,x,y,label,probability``) as soon as it
        arrives, so that an interrupted run keeps every finished patient.
    retries : int, default=2
        Times Dask reruns a task that raised (e.g. an unreadable file on a network
        share). Tasks on a worker that dies are rerun elsewhere whatever this is
        (up to the scheduler's ``distributed.scheduler.allowed-failures``, default 3).
    size_policy : {"pad", "resize"}, default="pad"
        For patches smaller than 50x50, as in :func:`idcclf.load_patches`.
    n_jobs : int or None, default=1
        Decoding processes per task (:func:`idcclf.load_patches`). Keep 1 on Dask
        workers: they are daemonic processes, which may not start children.

    Yields
    ------
    PatientPrediction
        One per patient: in the order of ``roots`` (patients sorted within a root)
        without a client, as they complete with one.

    Raises
    ------
    FileNotFoundError, NotADirectoryError, ValueError, TypeError
        At the call, before any work: for a missing root or model file, a folder that
        holds no patient folders, a patient given twice, bad parameters or a model
        that is not fitted. Bad patch files raise ``ValueError`` naming the file when
        their patient is reached.

    Notes
    -----
    The model is serialized once and registered as a Dask worker plugin: each worker
    keeps the bytes and deserializes the model on its first task, once per process.
    The scheduler gives the plugin to workers that join later, including a worker
    that its nanny restarts after a crash, and reruns the tasks that the dead worker
    held; no patient's result is lost. The plugin is unregistered at the end.

    Examples
    --------
    >>> from idcclf import predict_patients, sample_path  # doctest: +SKIP
    >>> for result in predict_patients("model.joblib", sample_path()):  # doctest: +SKIP
    ...     print(result.patient, len(result), result.idc_proba.mean())
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
    if size_policy not in ("pad", "resize"):
        raise ValueError(f"size_policy must be 'pad' or 'resize', got {size_policy!r}")
    folders = patient_folders(roots)
    out_dir = None if out is None else Path(out)
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise NotADirectoryError(f"out={out_dir} exists and is not a folder")
        out_dir.mkdir(parents=True, exist_ok=True)
    model = check_model(model)
    options = (batch_size, size_policy, n_jobs)
    return _results(model, folders, client, options, retries, out_dir)


def _results(model, folders, client, options, retries, out_dir) -> Iterator[PatientPrediction]:
    own_client = None
    if isinstance(client, str):
        from distributed import Client

        client = own_client = Client(client)
    try:
        if client is None:
            stream = (_score_patient(model, p, f, *options) for p, f in folders)
        else:
            stream = _stream_on_cluster(client, model, folders, options, retries)
        for result in stream:
            if out_dir is not None:
                _write_csv(result, out_dir)
            yield result
    finally:
        if own_client is not None:
            own_client.close()
