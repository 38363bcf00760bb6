"""The memory yardstick: a process that only imports TensorFlow, then waits.

Prints "ready" once imported; the harness reads its RSS and kills it.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow  # noqa: F401  (imported for its cost alone: the memory yardstick)

print("ready", flush=True)
while sys.stdin.readline():
    pass
time.sleep(0)
