"""TensorFlow, imported lazily inside worker children with the thread budget set once.

Never import TensorFlow at module level anywhere: importing it costs seconds and ~0.5 GB, and a
model touched before fork hangs prefork children (TF#27074). Call `tensorflow()` instead.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import cast

TF_THREADS_ENV = "STOCKPRED_TF_THREADS"
_configured_pid: int | None = None


def thread_budget() -> int:
    """Intra-op threads for this process: set per pool child by the worker, else all cores."""
    raw = os.environ.get(TF_THREADS_ENV, "")
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else (os.cpu_count() or 1)


def tensorflow() -> ModuleType:
    """Import TensorFlow, applying the thread budget the first time in this process."""
    global _configured_pid
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Deferred: TensorFlow is heavy to load and must load only in worker children, after fork.
    import tensorflow as tf

    if _configured_pid != os.getpid():
        threads = thread_budget()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        except RuntimeError:
            pass  # already initialised in this process; the first setting stands
        _configured_pid = os.getpid()
    return cast(ModuleType, tf)
