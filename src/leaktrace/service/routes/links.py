"""Signed download links: ``POST /api/media/{id}/links`` makes them (with the API token), and
``GET /d/{token}`` serves the recipient's copy to whoever holds the link — no token: the link
is the credential (see :mod:`leaktrace.links`)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from ...links import issue, opened
from ..deps import ServiceDep
from ..schemas import LinkOut, LinksIn, errors
from .media import ON_DEMAND, deliver

__all__ = ["public", "router"]

router = APIRouter(prefix="/media", tags=["links"])
#: Served outside ``/api/``: a link works without the API token.
public = APIRouter(tags=["links"])


@router.post(
    "/{media_id}/links",
    status_code=201,
    responses=errors(
        {
            400: "The body cannot be decoded (not UTF-8)",
            404: "No media with that id, or an unknown recipient (named)",
            413: "The body is larger than the upload limit",
            422: "Not JSON, no recipients, or expires_in out of range",
        }
    ),
)
def make_links(media_id: int, body: LinksIn, request: Request, s: ServiceDep) -> list[LinkOut]:
    """A signed link to each recipient's copy of an original, to send instead of the file:
    it works without the API token until it expires (or every link is revoked with
    ``leaktrace links revoke``); the copy is made and recorded when the link is first used."""
    valid_for = timedelta(seconds=body.expires_in)
    wanted = None if body.recipients == "all" else body.recipients
    base = str(request.base_url).rstrip("/")
    return [
        LinkOut(handle=link.handle, url=f"{base}/d/{token}", expires=link.expires)
        for link, token in issue(s.ws, media_id, wanted, valid_for=valid_for)
    ]


@public.get(
    "/d/{token}",
    response_class=FileResponse,
    responses={
        **ON_DEMAND,
        **errors(
            {
                403: "The link is damaged, altered, or not this workspace's",
                404: "Not a link",
                410: "The link expired or was revoked, or its recipient was removed",
            }
        ),
    },
)
def open_link(token: str, s: ServiceDep) -> FileResponse:
    """The copy a signed link opens (made and recorded now if it was not made yet), with no
    API token."""
    media, handle = opened(s.ws, token)
    return deliver(s, media, handle)
