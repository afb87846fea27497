"""Real-process kill tests: SIGKILL a writer in the middle of a write.

Each test starts a child Python process that runs the package's real write path
(``load_idc``'s cache writer, ``idcclf._io.atomic_dump`` as used by ``idcclf train``
for ``model.joblib``, ``idcclf._io.atomic_write_text`` as used for ``metrics.json``).
Inside the child one low-level call is patched so that, at a chosen point of the
write (some bytes already on disk), it fsyncs, announces itself in a marker file and
sleeps. The test waits for the marker, kills the child with SIGKILL (no ``finally``,
no atexit, no cleanup can run) and checks what a later reader sees.

Every test asserts something about the *final* path that only holds because the
writer works in a temporary file or folder and renames it into place at the end;
each says in a comment why it would fail if the write went straight to the target.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from _trees import make_sample_tree

import idcclf
from idcclf._io import atomic_dump, atomic_write_text
from idcclf.datasets import _cache, load_idc
from idcclf.datasets._decode import DecodePool

pytestmark = pytest.mark.skipif(
    sys.platform == "win32",
    reason="kills a child process with SIGKILL, which exists only on POSIX systems",
)

WAIT_S = 60.0
# The children import idcclf from the same place as this test process does.
SRC_DIR = str(Path(idcclf.__file__).resolve().parents[1])
ARRAY_FIELDS = ("data", "target", "groups", "coords", "filenames", "original_shapes")

# Run first in every child. block() makes what was written so far durable, tells the
# test (through the marker file, replaced atomically so it is never read half-written)
# which file it was writing, and sleeps until it is killed.
PRELUDE = r"""
import json, os, sys, time

MARKER = sys.argv[1]
_fsync = os.fsync


def block(path, fd=None):
    if fd is not None:
        _fsync(fd)
    with open(MARKER + ".part", "w", encoding="utf-8") as fh:
        json.dump({"path": os.fspath(path), "pid": os.getpid()}, fh)
    os.replace(MARKER + ".part", MARKER)
    time.sleep(600)
    sys.exit("block() was not killed")


def stall_before_rename():
    # atomic_path fsyncs the finished temporary file and then renames it onto the
    # target: stop right after that fsync, i.e. with the new file complete but not
    # yet in place.
    def fsync(fd):
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        block(path, fd)

    os.fsync = fsync
"""


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@contextlib.contextmanager
def child(tmp_path: Path, code: str, *args):
    """Run ``code`` in a child process; yield it and its marker path; always reap it."""
    marker = tmp_path / "child.marker"
    out, err = tmp_path / "child.stdout", tmp_path / "child.stderr"
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC_DIR + os.pathsep + env.get("PYTHONPATH", "")
    with open(out, "wb") as fout, open(err, "wb") as ferr:
        proc = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + code, str(marker), *map(str, args)],
            stdout=fout,
            stderr=ferr,
            env=env,
            cwd=tmp_path,
        )
    try:
        yield proc, marker
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=WAIT_S)


def wait_until_blocked(proc: subprocess.Popen, marker: Path) -> dict:
    """Wait (at most WAIT_S) for the child to reach its blocking point."""
    deadline = time.monotonic() + WAIT_S
    while not marker.exists():
        if proc.poll() is not None:
            err = marker.parent / "child.stderr"
            pytest.fail(f"child exited with {proc.returncode} before blocking:\n{_tail(err)}")
        if time.monotonic() > deadline:
            pytest.fail(f"child did not reach its blocking point within {WAIT_S:.0f} s")
        time.sleep(0.02)
    info = json.loads(marker.read_text(encoding="utf-8"))
    assert info["pid"] == proc.pid
    return info


def sigkill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=WAIT_S)
    assert proc.returncode == -signal.SIGKILL


# ------------------------------------------------------------------ load_idc cache

CACHE_CHILD = r"""
import io
import numpy as np
import idcclf.datasets as ds
from idcclf.datasets import _decode

root, home, stop_at, memory_map = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"
real_save, real_dump, real_decode = np.save, json.dump, _decode._decode_patch
decoded = []


def save(file, arr, *args, **kwargs):
    name = getattr(file, "name", "")
    if os.path.basename(name) == stop_at:
        buf = io.BytesIO()
        real_save(buf, arr, *args, **kwargs)
        raw = buf.getvalue()
        file.write(raw[: len(raw) // 2])  # half of the .npy is on disk ...
        file.flush()
        block(name, file.fileno())  # ... when the kill comes
    return real_save(file, arr, *args, **kwargs)


def dump(obj, fh, *args, **kwargs):
    name = getattr(fh, "name", "")
    if os.path.basename(name) == stop_at:
        text = json.dumps(obj, *args, **kwargs)
        fh.write(text[: len(text) // 2])
        fh.flush()
        block(name, fh.fileno())
    return real_dump(obj, fh, *args, **kwargs)


def decode(path):
    # Memory-mapped mode decodes straight into data.npy in the temp folder: stop
    # after a few patches, with that file created at full size but not yet filled.
    decoded.append(path)
    if stop_at == "decoding" and len(decoded) == 3:
        block(path)
    return real_decode(path)


np.save, json.dump, _decode._decode_patch = save, dump, decode
if stop_at == "first-fsync":
    # The first fsync of the cache writer: data.npy complete (memory-mapped mode: the
    # decoded map flushed), no other file written yet.
    os.fsync = lambda fd: block(os.readlink(f"/proc/self/fd/{fd}"), fd)
kwargs = {"memory_map": True} if memory_map else {}
ds.load_idc(root, data_home=home, n_jobs=1, **kwargs)
sys.exit("load_idc finished: the blocking point was never reached")
"""


@pytest.fixture
def decodes(monkeypatch):
    """Record every decoding pass of load_idc in this process."""
    calls = []
    real = DecodePool.decode

    def spy(self, paths, *args, **kwargs):
        calls.append(len(paths))
        return real(self, paths, *args, **kwargs)

    monkeypatch.setattr(DecodePool, "decode", spy)
    return calls


def assert_same(a, b) -> None:
    for field in ARRAY_FIELDS:
        np.testing.assert_array_equal(a[field], b[field], err_msg=field)
        assert a[field].dtype == b[field].dtype, field


HAS_MEMORY_MAP = "memory_map" in inspect.signature(load_idc).parameters
needs_memory_map = pytest.mark.skipif(
    not HAS_MEMORY_MAP, reason="this load_idc has no memory_map option"
)


@pytest.mark.parametrize(
    ("memory_map", "stop_at"),
    [
        (False, "data.npy"),  # the first array, half written
        (False, "first-fsync"),  # data.npy complete, nothing else written
        (False, "original_shapes.npy"),  # 5 arrays complete, the last half written
        (False, "manifest.json"),  # every array complete, the manifest half written
        pytest.param(True, "decoding", marks=needs_memory_map),
        pytest.param(True, "first-fsync", marks=needs_memory_map),
        pytest.param(True, "manifest.json", marks=needs_memory_map),
    ],
)
def test_sigkill_during_cache_write_leaves_no_valid_cache(tmp_path, decodes, memory_map, stop_at):
    if stop_at == "first-fsync" and not Path("/proc/self/fd").is_dir():
        pytest.skip("finding the fsynced file's name needs /proc/self/fd")
    root = make_sample_tree(tmp_path / "idc", n_patients=2, per_class=3)
    home = tmp_path / "home"
    cache_root = home / "idc_cache"
    kwargs = {"memory_map": True} if memory_map else {}

    args = (root, home, stop_at, int(memory_map))
    with child(tmp_path, CACHE_CHILD, *args) as (proc, marker):
        written = Path(wait_until_blocked(proc, marker)["path"])
        sigkill(proc)

    # The kill did hit the cache writer mid-write: what it was writing is there, in a
    # folder under idc_cache (with memory_map, data.npy is created before decoding).
    if stop_at == "decoding":
        (written,) = cache_root.glob("*/data.npy")
    assert written.is_file() and cache_root in written.parents
    if stop_at not in ("decoding", "first-fsync"):
        assert written.name == stop_at
    leftovers = sorted(cache_root.iterdir())
    assert leftovers
    # Nothing took the place of the cache folder: only hidden temporary folders. If the
    # writer wrote straight into idc_cache/<key>/ (no temp folder + rename), the killed
    # write would have left idc_cache/<key> here and this would fail.
    assert [p.name for p in leftovers if not p.name.startswith(".")] == []

    # The next load in this process finds no valid cache, decodes, and writes one.
    rebuilt = load_idc(root, data_home=home, n_jobs=1, **kwargs)
    assert decodes == [len(rebuilt.target)], "the patches were not decoded again"
    (final,) = (p for p in cache_root.iterdir() if not p.name.startswith("."))
    key = final.name
    assert _cache.read_cache(final, key) is not None
    # What the killed writer left is never valid, even under the right key.
    for leftover in leftovers:
        if leftover.exists():
            assert _cache.read_cache(leftover, key) is None, leftover

    # The data is right: equal to an uncached load, from the rebuilt cache too.
    cold = load_idc(root, cache=False, n_jobs=1)
    assert_same(rebuilt, cold)
    decodes.clear()
    hot = load_idc(root, data_home=home, n_jobs=1, **kwargs)
    assert decodes == [], "the rebuilt cache was not used"
    assert_same(hot, cold)


# -------------------------------------------------------------- model.joblib save

SAVE_CHILD = r"""
import joblib
import numpy as np
from idcclf._io import atomic_dump

target, stop_at = sys.argv[2], sys.argv[3]
real_dump = joblib.dump


class Stalling:
    # A file that blocks once 1 MiB of the real joblib stream has gone through it.
    def __init__(self, fh, name):
        self.fh, self.name, self.n = fh, name, 0

    def write(self, data):
        written = self.fh.write(data)
        self.n += memoryview(data).nbytes
        if self.n >= 1 << 20:
            self.fh.flush()
            block(self.name, self.fh.fileno())
        return written

    def __getattr__(self, attr):
        return getattr(self.fh, attr)


def dump(value, filename, *args, **kwargs):
    with open(filename, "wb") as fh:
        return real_dump(value, Stalling(fh, os.fspath(filename)), *args, **kwargs)


if stop_at == "mid-write":
    joblib.dump = dump  # atomic_dump looks joblib.dump up when it is called
else:
    stall_before_rename()
new = {"name": "new model", "weights": [np.full(100_000, float(i)) for i in range(8)]}
atomic_dump(new, target)
sys.exit("atomic_dump finished: the blocking point was never reached")
"""


def old_model() -> dict:
    rng = np.random.default_rng(0)
    return {"name": "old model", "weights": [rng.standard_normal(50_000) for _ in range(4)]}


def assert_same_model(a: dict, b: dict) -> None:
    assert a["name"] == b["name"]
    assert len(a["weights"]) == len(b["weights"])
    for x, y in zip(a["weights"], b["weights"], strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("stop_at", ["mid-write", "before-rename"])
def test_sigkill_during_model_save_keeps_the_previous_model(tmp_path, stop_at):
    out = tmp_path / "run"
    out.mkdir()
    target = out / "model.joblib"
    atomic_dump(old_model(), target)  # the save path of `idcclf train --out`
    before = target.read_bytes()

    with child(tmp_path, SAVE_CHILD, target, stop_at) as (proc, marker):
        wait_until_blocked(proc, marker)
        sigkill(proc)

    # The previous model is untouched, byte for byte, and still loads. Were the model
    # dumped straight onto model.joblib, the file would now hold the first MiB of the
    # new model ("mid-write") or the whole new model ("before-rename"), and both the
    # byte comparison and the load would fail (and a direct write with no fsync would
    # never reach the "before-rename" blocking point: wait_until_blocked fails).
    assert target.read_bytes() == before
    assert_same_model(joblib.load(target), old_model())
    # The new model stayed in a hidden temporary file next to it; the killed process
    # could not remove it, but no reader takes it for the model.
    (tmp,) = (p for p in out.iterdir() if p != target)
    assert tmp.name.startswith(".model.joblib.") and tmp.name.endswith(".tmp")
    if stop_at == "mid-write":
        assert tmp.stat().st_size >= 1 << 20
        with pytest.raises(Exception):  # noqa: B017 - any unpickling error will do
            joblib.load(tmp)
    else:
        new = joblib.load(tmp)
        assert new["name"] == "new model" and len(new["weights"]) == 8


# ------------------------------------------------------------- metrics.json output

TEXT_CHILD = r"""
import pathlib
from idcclf._io import atomic_write_text
from idcclf.metrics import evaluation_report, report_to_json

target, stop_at = sys.argv[2], sys.argv[3]


def write_text(self, data, *args, **kwargs):
    with open(self, "w", encoding="utf-8") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        block(self, fh.fileno())


if stop_at == "mid-write":
    pathlib.Path.write_text = write_text  # what atomic_write_text writes with
else:
    stall_before_rename()
y = [0, 1, 1, 0, 1, 0, 0, 1, 1, 0]
proba = [0.1, 0.9, 0.6, 0.4, 0.8, 0.3, 0.2, 0.7, 0.45, 0.55]
atomic_write_text(target, report_to_json(evaluation_report(y, proba)))
sys.exit("atomic_write_text finished: the blocking point was never reached")
"""


@pytest.mark.parametrize("stop_at", ["mid-write", "before-rename"])
def test_sigkill_during_metrics_write_keeps_the_previous_file(tmp_path, stop_at):
    from idcclf.metrics import evaluation_report, report_to_json

    out = tmp_path / "run"
    out.mkdir()
    target = out / "metrics.json"
    old_report = report_to_json(evaluation_report([0, 1, 0, 1], [0.2, 0.8, 0.6, 0.4]))
    atomic_write_text(target, old_report)  # how `idcclf train`/`evaluate` write it
    before = target.read_bytes()

    with child(tmp_path, TEXT_CHILD, target, stop_at) as (proc, marker):
        wait_until_blocked(proc, marker)
        sigkill(proc)

    # Written straight to metrics.json, the file would now be half a JSON document
    # ("mid-write") or the new report ("before-rename"); either breaks these checks.
    assert target.read_bytes() == before
    assert json.loads(target.read_text(encoding="utf-8")) == json.loads(old_report)
    (tmp,) = (p for p in out.iterdir() if p != target)
    assert tmp.name.startswith(".metrics.json.") and tmp.name.endswith(".tmp")
    text = tmp.read_text(encoding="utf-8")
    if stop_at == "mid-write":
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
    else:
        assert json.loads(text)["n_samples"] == 10
