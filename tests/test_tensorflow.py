"""idcclf._tensorflow: TensorFlow started without its C++ start-up lines."""

import subprocess
import sys


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_quiet_tensorflow_hides_the_start_up_lines_and_keeps_stderr():
    code = (
        "import sys, idcclf; idcclf.quiet_tensorflow(); import tensorflow, keras; "
        "print('after', file=sys.stderr)"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "after\n"  # nothing from TensorFlow, and stderr works again


def test_without_it_tensorflow_prints_at_start_up():
    # What quiet_tensorflow is for: if TensorFlow stops printing, it can go.
    done = run_python("import tensorflow")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip()
