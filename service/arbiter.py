"""The gunicorn master, with a lifecycle that loses no request (README, "Lifecycle").

gunicorn's own master, on SIGTERM, closes its listener and stops the workers: every
connection still waiting in the listen backlog is reset, and a load balancer that has not
yet heard of the shutdown keeps sending to a closed port. On SIGHUP it starts new workers
and stops the old ones at once, so requests wait while the new ones load TensorFlow.
This master instead:

- **drains on SIGTERM**: readiness answers 503 at once (the phase in ``ServerState``);
  for ``ECG_SHUTDOWN_DELAY_SECONDS`` it keeps accepting and serving, so that load
  balancers and Kubernetes endpoints stop sending; then the listeners refuse new
  connections (``refuse_new_connections``) while the workers serve every connection
  already accepted or queued, within ``ECG_GRACEFUL_TIMEOUT_SECONDS``, and it exits 0. A
  second SIGTERM ends the delay early; SIGINT and SIGQUIT stop at once, as in gunicorn;
- **retires an old worker only once a newer one is ready** (reload on SIGHUP, fewer
  workers on SIGTTOU), so the workers accepting connections always have a warm model.

The workers keep themselves out of the accept set until their model is ready
(``service/worker.py``). Imported by the master: no TensorFlow, no prometheus-client.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import struct
import time

from gunicorn.arbiter import Arbiter as _GunicornArbiter

from .lifecycle import Phase, create_server_state
from .settings import Settings

_SO_ATTACH_FILTER = 26  # Linux, <asm-generic/socket.h>
# Classic BPF run on each packet that reaches the listening socket, at its TCP header:
# drop a segment with SYN set and ACK clear (a new connection); keep all else, notably
# the ACK that completes a handshake already under way, so that connection still lands in
# the queue and is served. Opcodes from <linux/filter.h>: (code, jump if true, jump if
# false, constant).
_REFUSE_NEW_CONNECTIONS = (
    (0x30, 0, 0, 13),  # BPF_LD | BPF_B | BPF_ABS: A = the TCP flags byte
    (0x45, 2, 0, 0x10),  # BPF_JMP | BPF_JSET | BPF_K: ACK set -> keep
    (0x45, 0, 1, 0x02),  # SYN set -> drop, else keep
    (0x06, 0, 0, 0),  # BPF_RET: drop
    (0x06, 0, 0, 0xFFFFFFFF),  # BPF_RET: keep the whole segment
)


def refuse_new_connections(listener: socket.socket) -> bool:
    """Stop a TCP listener taking new connections while it keeps the ones it has queued.

    Closing a listener resets every connection still waiting in its accept queue. A
    socket filter that drops new SYNs instead lets the queue drain with nothing added to
    it; a client that tries to connect then retransmits its SYN until the listener has
    closed, and is refused. False where the platform has no socket filters or the socket
    is not TCP: a Unix socket's path is unlinked when gunicorn closes it, which refuses new
    connections in the same way."""
    if listener.family not in (socket.AF_INET, socket.AF_INET6) or listener.type != socket.SOCK_STREAM:
        return False
    program = ctypes.create_string_buffer(
        b"".join(struct.pack("HBBI", *op) for op in _REFUSE_NEW_CONNECTIONS)
    )
    fprog = struct.pack("HL", len(_REFUSE_NEW_CONNECTIONS), ctypes.addressof(program))
    try:  # the kernel copies the program: the buffer need not outlive the call
        listener.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def _slot(worker) -> int | None:
    return getattr(worker, "slot", None)  # service.worker.SyncWorker's; None for other kinds


class Arbiter(_GunicornArbiter):
    def __init__(self, app) -> None:
        super().__init__(app)
        self.server_state = create_server_state()  # before the first fork: workers inherit it
        self.shutdown_delay = Settings().shutdown_delay_seconds
        self._closing_at: float | None = None
        self._retired: set[int] = set()

    # -- shutdown -------------------------------------------------------------------
    def handle_term(self) -> None:
        if self._closing_at is not None:  # a second SIGTERM: stop waiting
            raise StopIteration
        self.server_state.phase = Phase.DRAINING
        self._closing_at = time.monotonic() + self.shutdown_delay
        self.log.info(
            "draining: readiness answers 503; accepting and serving for %gs more", self.shutdown_delay
        )

    def handle_hup(self) -> None:
        if self.server_state.shutting_down():
            self.log.warning("SIGHUP ignored: the server is shutting down")
            return
        super().handle_hup()

    def wait_for_signals(self, timeout: float = 1.0) -> list[int]:
        if self._closing_at is not None:
            timeout = max(0.0, min(timeout, self._closing_at - time.monotonic()))
        return super().wait_for_signals(timeout)

    def stop(self, graceful: bool = True) -> None:
        if graceful and self.LISTENERS:
            self.server_state.phase = Phase.CLOSING  # before the workers' SIGTERM: they drain
            refused = [refuse_new_connections(listener) for listener in self.LISTENERS]
            self.log.info(
                "closing: %s; serving the connections accepted or queued, for at most %ss",
                "new connections refused" if all(refused) else "listeners close",
                self.cfg.graceful_timeout,
            )
        super().stop(graceful)

    # -- workers --------------------------------------------------------------------
    def manage_workers(self) -> None:
        if self._closing_at is not None and time.monotonic() >= self._closing_at:
            raise StopIteration  # the delay is over: gunicorn's main loop calls halt()
        if len(self.WORKERS) < self.num_workers:
            self.spawn_workers()
        self._retire_replaced_workers()

    def reap_workers(self) -> None:
        try:
            super().reap_workers()
        finally:
            self.server_state.release_all_but({_slot(w) for w in self.WORKERS.values()})
            self._retired &= set(self.WORKERS)
        # gunicorn's reload waits here, reaping, for the old workers to go: retire them
        # as their replacements become ready
        if not self.server_state.shutting_down():
            self._retire_replaced_workers()

    def _retire_replaced_workers(self) -> None:
        """Stop the oldest workers beyond ``num_workers``: one whose model is not ready at
        once (it serves no one), a ready one only when a newer worker is ready in its place."""
        by_age = sorted(self.WORKERS.items(), key=lambda item: item[1].age)
        excess = len(by_age) - self.num_workers
        if excess <= 0:
            return
        ready = self.server_state.is_ready
        replacements = sum(ready(_slot(w)) for _, w in by_age[excess:])
        for pid, worker in by_age[:excess]:
            if ready(_slot(worker)):
                if replacements == 0:
                    continue
                replacements -= 1
            if pid not in self._retired:  # once: a retiring worker may still be serving
                self._retired.add(pid)
                self.log.info(
                    "retiring worker %s (%s)", pid, "replaced" if ready(_slot(worker)) else "not ready"
                )
                self.server_state.retire(_slot(worker))  # so the worker knows the SIGTERM is ours
                self.kill_worker(pid, signal.SIGTERM)
