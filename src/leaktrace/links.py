"""Signed, expiring download links: one recipient's copy of one original, the link itself the
credential (a creator sends each patron a link instead of a file).

A link's token is ``<payload>.<signature>``, both base64url without padding. The payload is
``v1:<media id>:<handle>:<expiry, Unix seconds>:<epoch>``; the signature is HMAC-SHA256 over
it under a link-signing secret derived from the workspace key for that epoch
(:func:`leaktrace.keys.derived_secret`, label ``links/v1/<epoch>``) — never the key itself,
and never stored or logged: it is derived again whenever a link is made or checked. Bumping
the workspace's epoch revokes every link made before.

:func:`sign` and :func:`verify` are pure (the caller supplies the secret of an epoch and the
clock); :func:`issue` and :func:`opened` do the same on a workspace, for the CLI and the
service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .errors import LinkError, LinkGoneError, LinkRefusedError, NotFoundError
from .keys import Key, derived_secret

if TYPE_CHECKING:
    from .registry import Media, Workspace

__all__ = [
    "DEFAULT_EXPIRY",
    "MAX_EXPIRY",
    "Link",
    "issue",
    "link_secret",
    "opened",
    "parse_duration",
    "sign",
    "verify",
]

#: How long a link works unless told otherwise.
DEFAULT_EXPIRY = timedelta(days=7)
#: The longest a link may work (a link is a bearer credential: it should end).
MAX_EXPIRY = timedelta(days=366)
_VERSION = "v1"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d{1,9})([smhdw])")
# A token is short; anything longer is not one (and is not worth hashing).
_TOKEN_MAX = 512


@dataclass(frozen=True)
class Link:
    """What a link opens: ``handle``'s copy of the original ``media_id`` until ``expires``,
    while the workspace's link epoch is ``epoch``."""

    media_id: int
    handle: str
    expires: datetime
    epoch: int = 0


def link_secret(key: Key, epoch: int) -> bytes:
    """The secret that signs the links of ``epoch`` (derived from ``key``, never the key)."""
    return derived_secret(key, f"links/{_VERSION}/{epoch}")


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"12h"``, ``"7d"`` or ``"2w"`` as a duration, at most
    :data:`MAX_EXPIRY`; anything else is a ``ValueError`` saying what is accepted."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise ValueError(
            f"{text!r} is not a duration: a number and a unit, s, m, h, d or w (e.g. 7d, 12h)"
        )
    span = timedelta(seconds=int(found[1]) * _UNITS[found[2]])
    if span <= timedelta(0) or span > MAX_EXPIRY:
        raise ValueError(f"a link works for 1 second to {MAX_EXPIRY.days} days, not {text}")
    return span


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()


def sign(link: Link, secret: bytes) -> str:
    """The token of ``link`` signed with ``secret`` (:func:`link_secret` of its epoch)."""
    if ":" in link.handle or link.media_id < 0 or link.epoch < 0:
        raise ValueError(f"cannot sign {link}")
    expires = int(link.expires.timestamp())
    payload = f"{_VERSION}:{link.media_id}:{link.handle}:{expires}:{link.epoch}".encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify(
    token: str, secret: Callable[[int], bytes], *, epoch: int, now: datetime | None = None
) -> Link:
    """The link ``token`` stands for, if it is genuine, of the current ``epoch`` and not
    expired at ``now``; ``secret(e)`` gives the signing secret of epoch ``e``.

    Raises :class:`~leaktrace.errors.LinkRefusedError` for a token that is malformed or whose
    signature does not match (tampered with, or another workspace's), and
    :class:`~leaktrace.errors.LinkGoneError` for a genuine one that expired or was revoked.
    """
    refused = LinkRefusedError("this link is not valid (damaged or altered); ask for a new one")
    try:
        if len(token) > _TOKEN_MAX:
            raise ValueError("too long")
        head, _, tail = token.partition(".")
        payload, signature = _unb64(head), _unb64(tail)
        version, media, handle, expires, made_in = payload.decode("ascii").split(":")
        if version != _VERSION or not all(
            s.isdigit() and s.isascii() for s in (media, expires, made_in)
        ):
            raise ValueError("unknown version or malformed fields")
        link = Link(int(media), handle, datetime.fromtimestamp(int(expires), UTC), int(made_in))
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError, OSError):
        raise refused from None
    if link.epoch > epoch or not hmac.compare_digest(_mac(secret(link.epoch), payload), signature):
        raise refused
    if link.epoch < epoch:
        raise LinkGoneError("this link was revoked (all links made before were); ask for a new one")
    moment = now if now is not None else datetime.now(UTC)
    if moment >= link.expires:
        raise LinkGoneError(
            f"this link expired on {link.expires:%Y-%m-%d %H:%M} UTC; ask for a new one"
        )
    return link


# -- in a workspace ---------------------------------------------------------------------------
def issue(
    ws: Workspace,
    media_id: int,
    handles: Sequence[str] | None,
    *,
    valid_for: timedelta = DEFAULT_EXPIRY,
    now: datetime | None = None,
) -> list[tuple[Link, str]]:
    """A link, with its token, to each recipient's copy of the original ``media_id``
    (``handles`` None: everyone registered, maybe nobody), working for ``valid_for`` from
    ``now``."""
    if not timedelta(0) < valid_for <= MAX_EXPIRY:
        raise LinkError(f"a link works for 1 second to {MAX_EXPIRY.days} days")
    media = ws.media_by_id(media_id)
    people = ws.recipients(handles)  # "all" of nobody: no links
    epoch = ws.links_epoch()
    secret = link_secret(ws.key, epoch)
    expires = (now if now is not None else datetime.now(UTC)).replace(microsecond=0) + valid_for
    links = [Link(media.id, r.handle, expires, epoch) for r in people]
    return [(link, sign(link, secret)) for link in links]


def opened(ws: Workspace, token: str, *, now: datetime | None = None) -> tuple[Media, str]:
    """The original and the recipient's handle a link opens, if it still works."""
    link = verify(token, lambda epoch: link_secret(ws.key, epoch), epoch=ws.links_epoch(), now=now)
    try:
        media = ws.media_by_id(link.media_id)
        (person,) = ws.recipients([link.handle])
    except NotFoundError:
        raise LinkGoneError("this link's original or recipient is no longer registered") from None
    return media, person.handle
