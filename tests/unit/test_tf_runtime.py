"""TensorFlow is imported lazily and takes the thread budget the worker gave its child."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT

PROBE = """
import sys
from stockpred.infra import tf_runtime
assert "tensorflow" not in sys.modules
tf = tf_runtime.tensorflow()
tf_runtime.tensorflow()
print(tf.config.threading.get_intra_op_parallelism_threads())
"""


def test_tensorflow_takes_the_per_child_thread_budget() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
        env={"STOCKPRED_TF_THREADS": "1", "PATH": ""},
    )
    assert out.stdout.strip().splitlines()[-1] == "1"
