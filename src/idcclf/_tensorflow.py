"""Starting TensorFlow without the C++ start-up lines it writes to stderr."""

from __future__ import annotations

import os
import sys


def quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ start-up messages hidden, and quiet its logger.

    TensorFlow's runtime writes its start-up lines (oneDNN notices, CUDA probing on a
    machine without a GPU, CPU instruction notices) to the process's stderr before its
    logging can be configured, so ``TF_CPP_MIN_LOG_LEVEL`` does not hide them.
    Redirecting the stderr file descriptor while TensorFlow starts does. Call this
    once, before anything imports TensorFlow, Keras or a fitted model; afterwards it
    only sets TensorFlow's Python logger to errors. Python exceptions raised while
    TensorFlow starts still propagate, after stderr is restored.

    Examples
    --------
    >>> import idcclf
    >>> idcclf.quiet_tensorflow()  # doctest: +SKIP
    """
    if "tensorflow" not in sys.modules:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
