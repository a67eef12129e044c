"""Keyed fingerprints: prove two secrets are equal without storing either.

A plain hash of a low-entropy secret can be reversed by guessing, so evidence carries HMAC-SHA256 under a
key that never enters a run directory: it lives in the user's state directory (created once, mode 0600)
or wherever `MESHBOOK_FINGERPRINT_KEY_FILE` points (e.g. a CI secret), so fingerprints from runs that
share the key are comparable across runs and clusters.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from meshbook.errors import ParameterError

__all__ = [
    "ENV_KEY_FILE",
    "FINGERPRINT_PREFIX",
    "KEY_BYTES",
    "fingerprint",
    "fingerprint_key",
    "fingerprint_key_path",
]

ENV_KEY_FILE = "MESHBOOK_FINGERPRINT_KEY_FILE"
KEY_FILE_NAME = "fingerprint.key"
KEY_BYTES = 32
FINGERPRINT_PREFIX = "hmac-sha256:"
_MIN_KEY_BYTES = 16

log = logging.getLogger(__name__)


def fingerprint_key_path(state_dir: Path | None = None) -> Path:
    """Where the key lives: `state_dir/fingerprint.key` if given, else `$MESHBOOK_FINGERPRINT_KEY_FILE`,
    else `$XDG_STATE_HOME/meshbook/fingerprint.key` (default `~/.local/state/meshbook/fingerprint.key`)."""
    if state_dir is not None:
        return Path(state_dir) / KEY_FILE_NAME
    override = os.environ.get(ENV_KEY_FILE)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "meshbook" / KEY_FILE_NAME


def fingerprint_key(state_dir: Path | None = None) -> bytes:
    """The 32-byte fingerprint key, created (random, mode 0600) the first time it is asked for.

    The file holds 64 hex digits and a newline (a raw 32-byte file is accepted too). Creation is safe
    when several kernels start at once: the key is written to a private temporary file and linked into
    place, so a reader only ever sees a complete key and every process ends up with the same one.
    """
    path = fingerprint_key_path(state_dir)
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _create_key(path)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    data = path.read_bytes()
    text = data.strip()
    try:
        key = bytes.fromhex(text.decode("ascii")) if len(text) == 2 * KEY_BYTES else None
    except (UnicodeDecodeError, ValueError):
        key = None
    if key is None and len(data) == KEY_BYTES:
        key = data
    if key is None:
        raise ParameterError(
            [
                f"{path}: not a fingerprint key (expected {2 * KEY_BYTES} hex digits or {KEY_BYTES} raw bytes, "
                f"got {len(data)} bytes); delete it to have a new key created, or point {ENV_KEY_FILE} at a valid one"
            ]
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s: fingerprint key is readable by other users (mode %04o); chmod 600 it", path, mode)
    return key


def _create_key(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, (secrets.token_bytes(KEY_BYTES).hex() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process created the key first: theirs wins
        log.info("created fingerprint key %s", path)
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: exclusive rename-free fallback
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, tmp.read_bytes())
                os.fsync(fd)
            finally:
                os.close(fd)
    finally:
        tmp.unlink(missing_ok=True)


def fingerprint(value: str | bytes, key: bytes) -> str:
    """`hmac-sha256:<64 hex digits>` of the value (UTF-8) under `key`; equal values, equal fingerprints."""
    if len(key) < _MIN_KEY_BYTES:
        raise ValueError(f"a fingerprint key needs at least {_MIN_KEY_BYTES} bytes, got {len(key)}")
    data = value.encode("utf-8") if isinstance(value, str) else value
    return FINGERPRINT_PREFIX + hmac.new(key, data, hashlib.sha256).hexdigest()
