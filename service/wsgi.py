"""gunicorn's entry point, imported in each worker after the fork (never ``--preload``)."""

from __future__ import annotations

import os

from .app import create_app
from .lifecycle import this_server
from .settings import Settings

WORKER_BOOT_ERROR = 3  # gunicorn's exit status that makes the master stop, not respawn


def _exit_worker(_: BaseException) -> None:
    os._exit(WORKER_BOOT_ERROR)


# this_server(): the state the master (service/arbiter.py) made before forking this worker
app = create_app(Settings(), on_load_failure=_exit_worker, server=this_server())
