"""API keys: the file that names them, and the set a worker holds (README, Security).

Only each key's SHA-256 digest is kept in memory. A presented key is hashed and compared
with every digest by ``hmac.compare_digest``, without stopping at the first match, so
the time taken says nothing about which key, or how much of one, was right. Keys are
never logged: a key is named by its fingerprint, the first 8 hex digits of its digest.

Rotation needs no restart: every worker looks at the file every
``ECG_API_KEYS_CHECK_SECONDS`` and applies a change once the file has stayed the same
for one look (so a file being written in place is never read half-way). A change that
cannot be applied (unreadable, a malformed line, no key at all) is logged and counted,
and the worker keeps the keys it had: a bad edit never locks every client out.

No Flask here: the gunicorn master checks the file with this module before forking.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .metrics import ServiceMetrics

log = logging.getLogger("service.api_keys")

MIN_KEY_LENGTH = 16
# RFC 6750's b64token: what a Bearer credential may contain
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class KeysFileError(ValueError):
    """The keys file cannot be used; the message names the line, never a key."""


def fingerprint(digest: bytes) -> str:
    return digest.hex()[:8]


def is_token68(text: str) -> bool:
    return _TOKEN68.fullmatch(text) is not None


@dataclass(frozen=True)
class KeySet:
    digests: tuple[bytes, ...]

    def match(self, key: str) -> str | None:
        """The fingerprint of the key ``key`` is, or None."""
        presented = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        found: bytes | None = None
        for digest in self.digests:  # every digest, always: no early exit
            if hmac.compare_digest(presented, digest):
                found = digest
        return fingerprint(found) if found is not None else None

    def fingerprints(self) -> list[str]:
        return [fingerprint(d) for d in self.digests]


def parse_keys(text: str) -> KeySet:
    """One key a line; blank lines and ``#`` comments, also after a key, are ignored."""
    digests: list[bytes] = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split(None, 1)
        if not parts:
            continue
        key, rest = parts[0], parts[1:]
        if key.startswith("#"):
            continue
        if rest and not rest[0].strip().startswith("#"):
            raise KeysFileError(f"line {number}: one key a line (after a key, only a # comment)")
        if not is_token68(key):
            raise KeysFileError(
                f"line {number}: a key may hold only A-Z a-z 0-9 - . _ ~ + / (and = at its end)"
            )
        if len(key) < MIN_KEY_LENGTH:
            raise KeysFileError(f"line {number}: a key needs at least {MIN_KEY_LENGTH} characters")
        digest = hashlib.sha256(key.encode()).digest()
        if digest not in digests:
            digests.append(digest)
    if not digests:
        raise KeysFileError("no key in the file: every request would be refused")
    return KeySet(tuple(digests))


def read_keys_file(path: Path) -> KeySet:
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a BOM some editors write is not a key
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc.__class__.__name__
        raise KeysFileError(f"cannot read it: {reason}") from None
    return parse_keys(text)


def _signature(path: Path) -> tuple[object, ...]:
    try:
        st = os.stat(path)  # follows symlinks: a Kubernetes Secret's ..data swap changes the inode
    except OSError as exc:
        return ("missing", exc.errno)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class KeysFile:
    """The keys a worker holds, and the file they come from; ``keys`` is always a whole
    set (replaced in one assignment), so a request never sees a half-applied change."""

    def __init__(
        self,
        path: Path,
        check_seconds: float,
        metrics: ServiceMetrics | None = None,
        fallback: KeySet | None = None,
    ) -> None:
        """Read the file; if that fails, start with ``fallback`` (the keys the gunicorn
        master read) rather than fail: a worker respawned while the file is broken must
        not stop the server. With no fallback, the error is raised."""
        self.path = path
        self.check_seconds = check_seconds
        self._metrics = metrics
        self._pending: tuple[object, ...] | None = None
        self._stale = False  # holds other keys than the file's (a change was refused)
        self._applied = _signature(path)
        started = time.time()
        try:
            self.keys = read_keys_file(path)
        except KeysFileError as exc:
            if fallback is None:
                raise
            log.error("API keys file not usable; serving with the keys read at start: %s", exc)
            if metrics is not None:
                metrics.api_keys_reload_failures.inc()
            self.keys = fallback
            self._stale = True
            return
        self._synced(started)
        log.info("API keys loaded", extra={"keys": self.keys.fingerprints()})

    def _synced(self, as_of: float) -> None:
        if self._metrics is not None:
            self._metrics.api_keys_loaded.set(as_of)

    def check(self) -> None:
        """One look at the file: apply a change that has stayed for one look."""
        started = time.time()
        signature = _signature(self.path)
        if signature == self._applied:
            self._pending = None
            if not self._stale:
                self._synced(started)  # what the worker holds is the file as of now
            return
        if signature != self._pending:
            self._pending = signature  # changed since the last look: wait for it to settle
            return
        self._pending = None
        self._applied = signature
        try:
            keys = read_keys_file(self.path)
        except KeysFileError as exc:
            log.error("API keys file change not applied; keeping the previous keys: %s", exc)
            if self._metrics is not None:
                self._metrics.api_keys_reload_failures.inc()
            self._stale = True  # so the gauge no longer claims the file is in force
            return
        self.keys = keys
        self._stale = False
        self._synced(started)
        log.info("API keys reloaded", extra={"keys": keys.fingerprints()})

    def watch(self) -> threading.Thread:
        """Check every ``check_seconds`` in a daemon thread, for the worker's lifetime."""

        def loop() -> None:
            while True:
                time.sleep(self.check_seconds)
                try:
                    self.check()
                except Exception:  # never let the watcher die: the keys would freeze
                    log.exception("API keys check failed")

        thread = threading.Thread(target=loop, name="api-keys-watch", daemon=True)
        thread.start()
        return thread
