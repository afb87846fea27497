"""``idcclf predict``: the local and the ``--scheduler`` paths print and fail alike."""

import shutil
import warnings

import pytest
from _cli import copy_patients, one_line_error, save_tiny_model

from idcclf.cli import main

PATIENTS = ["8863", "8867", "8914"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return copy_patients(tmp_path_factory.mktemp("idc"), PATIENTS, per_class=5)


@pytest.fixture(scope="module")
def scheduler():
    distributed = pytest.importorskip("distributed", reason="needs the 'dask' extra")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # start-up notices (dashboard port) are not tested
        cluster = distributed.LocalCluster(
            n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None
        )
    with cluster:
        yield cluster.scheduler_address


def test_scheduler_prints_the_local_lines_and_summary(model_file, tree, scheduler, capsys):
    folders = [str(tree / patient) for patient in PATIENTS]
    capsys.readouterr()
    assert main(["predict", str(model_file), *folders]) == 0
    local = capsys.readouterr()
    assert main(["predict", "--scheduler", scheduler, str(model_file), *folders]) == 0
    remote = capsys.readouterr()
    local_lines, remote_lines = local.out.splitlines(), remote.out.splitlines()
    assert remote_lines[0] == local_lines[0] == "probability\tprediction\tfile"
    assert len(local_lines) == 1 + 2 * 5 * len(PATIENTS)
    assert sorted(remote_lines[1:]) == sorted(local_lines[1:])
    n_idc = sum(line.split("\t")[1] == "IDC" for line in local_lines[1:])
    share = f"{n_idc / 30:.1%}"
    summary = f"30 patches: {n_idc} predicted IDC ({share}) at threshold 0.5\n"
    assert local.err == remote.err == summary


def only_an_error(capsys, argv, *expected):
    """``main(argv)`` fails with one error line on stderr and nothing on stdout."""
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == 2 and out == "", out
    assert err.count("\n") == 1 and err.startswith("idcclf predict: error: "), err
    for text in expected:
        assert text in err, err


def test_scheduler_errors_are_one_line_before_any_output(
    model_file, tree, scheduler, tmp_path, capsys
):
    patient = tmp_path / "8863"
    shutil.copytree(tree / "8863", patient)
    victim = sorted((patient / "1").iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:40])
    argv = ["predict", "--scheduler", scheduler, model_file, patient]
    only_an_error(capsys, argv, victim.name, "truncated PNG")
    only_an_error(capsys, [*argv, "--skip-bad-files"], "--skip-bad-files does not apply")
    # The local path names the same file.
    only_an_error(capsys, ["predict", model_file, patient], victim.name, "--skip-bad-files")


def test_an_unreachable_scheduler_is_one_line(model_file, tree, capsys):
    dask = pytest.importorskip("dask", reason="needs the 'dask' extra")
    pytest.importorskip("distributed", reason="needs the 'dask' extra")
    argv = ["predict", "--scheduler", "tcp://127.0.0.1:9", model_file, tree / "8863"]
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        one_line_error(capsys, argv, "cannot reach the scheduler at tcp://127.0.0.1:9")
