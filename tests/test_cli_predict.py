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


def printed(out: str) -> dict[str, float]:
    """``file -> probability`` of predict's table."""
    return {line.split("\t")[2]: float(line.split("\t")[0]) for line in out.splitlines()[1:]}


def test_smooth_is_the_same_here_and_on_the_scheduler(model_file, tree, scheduler, capsys):
    import numpy as np

    from idcclf.datasets import parse_patch_filename
    from idcclf.slides import smooth_probabilities

    folders = [str(tree / patient) for patient in PATIENTS]
    capsys.readouterr()
    assert main(["predict", str(model_file), *folders]) == 0
    plain = printed(capsys.readouterr().out)
    # A radius wider than any slide: each patch gets its patient's mean, so all change.
    argv = ["predict", "--smooth", "1000", str(model_file), *folders]
    assert main(argv) == 0
    local = printed(capsys.readouterr().out)
    assert main([*argv, "--scheduler", scheduler]) == 0
    remote = printed(capsys.readouterr().out)
    assert remote == local and local.keys() == plain.keys()

    names = list(plain)
    parsed = [parse_patch_filename(name) for name in names]
    expected = smooth_probabilities(
        [plain[name] for name in names], [p[1:3] for p in parsed], [p[0] for p in parsed],
        radius=1000,
    )  # fmt: skip
    # predict prints 4 decimals: the mean of rounded values is within 1e-4 of the real one.
    np.testing.assert_allclose([local[name] for name in names], expected, atol=1.5e-4)
    for patient in PATIENTS:
        mine = [local[name] for name, p in zip(names, parsed, strict=True) if p[0] == patient]
        assert max(mine) - min(mine) < 1e-9
    assert any(abs(local[name] - plain[name]) > 1e-3 for name in names)


def test_smooth_needs_coordinates_in_the_file_names(model_file, tree, tmp_path, capsys):
    source = sorted((tree / "8863" / "0").glob("*.png"))[0]
    loose = tmp_path / "patch_one.png"
    shutil.copy(source, loose)
    argv = ["predict", "--smooth", "1", model_file, loose]
    one_line_error(capsys, argv, "patch_one.png", "--smooth needs the patient")
    one_line_error(capsys, ["predict", "--smooth", "-1", model_file, loose], "--smooth -1")
