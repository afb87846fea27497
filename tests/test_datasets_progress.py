"""idcclf.datasets._progress: the progress lines of load_idc(verbose=1)."""

from __future__ import annotations

import io
import re

import pytest
from _patches import make_tree

from idcclf.datasets import load_idc, load_sample
from idcclf.datasets._progress import Progress

pytest_plugins = ["_patch_fixtures"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_few_lines_with_count_rate_and_time_left():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(10_000, "/data/idc", stream=out, clock=clock)
    progress.start("2 processes")
    for _ in range(100):  # 100 chunks of 100 patches, 0.5 s each: 50 s in all
        clock.now += 0.5
        progress.advance(100)
    progress.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "load_idc: decoding 10,000 patches under /data/idc (2 processes)"
    assert lines[-1] == "load_idc: decoded 10,000 patches in 50.0 s (200 patches/s)"
    middle = lines[1:-1]
    # At most one line per 10% (and per 2 s): 9 lines, at 10%, 20%, ..., 90%.
    assert len(middle) == 9
    assert middle[0] == (
        "load_idc: 1,000/10,000 patches decoded (10%), 200 patches/s, about 45 s left"
    )
    assert middle[-1].startswith("load_idc: 9,000/10,000 patches decoded (90%)")


def test_quick_decodes_print_only_the_first_and_last_line():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(1000, "x", stream=out, clock=clock)
    progress.start("in this thread")
    for _ in range(10):  # 0.1 s for 10% each: the 2 s rule holds the lines back
        clock.now += 0.1
        progress.advance(100)
    progress.finish()
    assert len(out.getvalue().splitlines()) == 2


def test_load_idc_is_silent_by_default_and_reports_with_verbose(tree, home, capsys):
    load_idc(tree, data_home=home)
    assert capsys.readouterr().err == ""
    load_idc(tree, data_home=home / "2", verbose=1, n_jobs=1)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"load_idc: decoding 8 patches under {tree.resolve()} (in this thread)"
    assert re.fullmatch(r"load_idc: decoded 8 patches in \d+\.\d s \([\d,]+ patches/s\)", err[-1])
    load_idc(tree, data_home=home / "2", verbose=1)
    (hit,) = capsys.readouterr().err.splitlines()
    assert hit.startswith(f"load_idc: read 8 patches under {tree.resolve()} from the cache ")


def test_verbose_with_several_roots_and_a_subset(tmp_path, capsys):
    a = make_tree(tmp_path / "a", n_per_class=3)
    b = make_tree(tmp_path / "b", patients=("20",))
    load_idc([a, b], cache=False, verbose=True, max_per_class=2, n_jobs=1)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"load_idc: decoding 4 patches under {a.resolve()}, {b.resolve()}")
    assert err[-1].startswith("load_idc: decoded 4 patches in")
    load_sample(cache=False, verbose=0, patients=["8863"])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("verbose", [-1, 1.5, "yes"])
def test_verbose_is_checked(tree, verbose):
    with pytest.raises(ValueError, match="verbose must be an int >= 0"):
        load_idc(tree, cache=False, verbose=verbose)
