"""The secret key and every keyed pseudo-random stream derived from it.

Each stream is ``SHAKE-256(HMAC-SHA256(key, context))``: the HMAC makes it unpredictable
without the key, SHAKE stretches it to any length, and neither depends on numpy's
generator algorithms (whose streams numpy does not promise to keep across versions), so a
copy marked today still traces after an upgrade.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from .errors import KeyFileError

__all__ = ["Key", "derived_secret", "keyed_bytes", "keyed_rows"]

_HEADER = "leaktrace-key v1"
_KEY_BYTES = 32


class Key:
    """A 256-bit secret from which every pattern and codeword is derived.

    The secret never appears in ``repr``/``str``; only a short public fingerprint does.

    Examples
    --------
    >>> key = Key.generate()
    >>> key.save("leaktrace.key")          # doctest: +SKIP
    >>> Key.load("leaktrace.key") == key   # doctest: +SKIP
    True
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != _KEY_BYTES:
            raise KeyFileError(f"a key is exactly {_KEY_BYTES} bytes")
        self._secret = secret

    @classmethod
    def generate(cls) -> Key:
        """Return a new random key from the operating system's CSPRNG."""
        return cls(secrets.token_bytes(_KEY_BYTES))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Key:
        """Read a key file written by :meth:`save`."""
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"cannot read key file {os.fspath(path)!r}: {exc}") from exc
        lines = text.split()
        if len(lines) != 3 or " ".join(lines[:2]) != _HEADER:
            raise KeyFileError(f"{os.fspath(path)!r} is not a leaktrace key file")
        try:
            return cls(bytes.fromhex(lines[2]))
        except ValueError as exc:
            raise KeyFileError(f"{os.fspath(path)!r} holds a malformed key") from exc

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key to a new file readable only by its owner (mode 0600).

        Refuses to overwrite an existing file: losing a key makes every copy untraceable.
        """
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError as exc:
            raise KeyFileError(f"{os.fspath(path)!r} exists; refusing to overwrite a key") from exc
        except OSError as exc:
            raise KeyFileError(f"cannot create key file {os.fspath(path)!r}: {exc}") from exc
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(f"{_HEADER}\n{self._secret.hex()}\n")

    @property
    def fingerprint(self) -> str:
        """A short public identifier of the key (safe to show and store)."""
        return hashlib.sha256(b"leaktrace-fingerprint|" + self._secret).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Key(fingerprint={self.fingerprint!r})"

    def __reduce__(self) -> tuple[type[Key], tuple[bytes]]:
        # Lets process pools receive a key; pickles stay in memory, never on disk or in logs.
        return (Key, (self._secret,))

    def _mac(self, context: str) -> bytes:
        return hmac.new(self._secret, context.encode("utf-8"), hashlib.sha256).digest()

    def _macs(self, prefix: str, suffixes: Iterable[str]) -> Iterator[bytes]:
        """``_mac(prefix + s)`` for each suffix, the key and prefix absorbed once."""
        base = hmac.new(self._secret, prefix.encode("utf-8"), hashlib.sha256)
        for suffix in suffixes:
            h = base.copy()
            h.update(suffix.encode("utf-8"))
            yield h.digest()


def derived_secret(key: Key, label: str) -> bytes:
    """A 32-byte secret for one use of the key that must not be the key itself (``label``
    names the use, e.g. signing download links): HMAC-SHA256 under a context no keyed stream
    uses. Knowing it reveals neither the key nor any other label's secret."""
    return key._mac(f"leaktrace/secret\x00{label}")


def keyed_bytes(key: Key, context: str, nbytes: int) -> np.ndarray:
    """Return ``nbytes`` pseudo-random bytes (uint8 array) for ``context`` under ``key``.

    Same key and context give the same bytes on every platform and numpy version.
    """
    return np.frombuffer(hashlib.shake_256(key._mac(context)).digest(nbytes), dtype=np.uint8)


def keyed_rows(key: Key, prefix: str, suffixes: Sequence[str], nbytes: int) -> np.ndarray:
    """The ``keyed_bytes`` of the contexts ``prefix + suffix`` for every suffix, one row each
    (a ``len(suffixes)`` × ``nbytes`` uint8 array): the same bytes, derived many at a time."""
    shake = hashlib.shake_256
    out = b"".join([shake(mac).digest(nbytes) for mac in key._macs(prefix, suffixes)])
    return np.frombuffer(out, dtype=np.uint8).reshape(len(suffixes), nbytes)
