"""``/api/recipients``: the people who receive copies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile

from ..deps import ServiceDep
from ..schemas import ImportOut, RecipientIn, RecipientOut, errors
from ..uploads import saved

__all__ = ["router"]

router = APIRouter(prefix="/recipients", tags=["recipients"])


@router.get("")
def list_recipients(s: ServiceDep) -> list[RecipientOut]:
    """Every recipient, sorted by handle, with how many originals each has a copy of."""
    n = s.ws.copy_counts()
    return [
        RecipientOut(handle=r.handle, name=r.name, email=r.email, copies=n.get(r.handle, 0))
        for r in s.ws.recipients()
    ]


@router.post(
    "",
    status_code=201,
    responses=errors(
        {
            400: "The body cannot be decoded (not UTF-8)",
            409: "The handle is taken (ignoring case)",
            413: "The body is larger than the upload limit",
            422: "Not JSON, a field missing or of the wrong type, a bad handle, a name or "
            "email too long or with control characters",
        }
    ),
)
def add_recipient(body: RecipientIn, s: ServiceDep) -> RecipientOut:
    """Register one recipient."""
    r = s.ws.add_recipient(body.handle, name=body.name, email=body.email)
    return RecipientOut(handle=r.handle, name=r.name, email=r.email)


@router.post(
    "/import",
    status_code=201,
    responses=errors(
        {
            400: "The multipart body cannot be parsed",
            409: "A row is registered already (without skip_existing), or a handle appears twice",
            413: "The upload is larger than the limit",
            422: "No file, an empty or unreadable one (not UTF-8: how to save it), or a bad "
            "row (named by its line); nothing is imported",
        }
    ),
)
def import_recipients(
    file: Annotated[UploadFile, File()],
    s: ServiceDep,
    skip_existing: Annotated[bool, Form()] = False,
) -> ImportOut:
    """Import a CSV with a header row: all new rows, or none. Columns ``handle,name,email``,
    or an export with ``Name`` and ``Email`` columns (a Patreon members CSV), handles then
    made from the names. With ``skip_existing`` the rows already registered are skipped."""
    with saved(file) as path:
        done = s.ws.import_recipients(path, skip_existing=skip_existing)
    people = [RecipientOut(handle=r.handle, name=r.name, email=r.email) for r in done.added]
    return ImportOut(imported=len(people), recipients=people, skipped=done.skipped)


@router.delete(
    "/{handle}",
    status_code=204,
    response_class=Response,
    responses=errors(
        {404: "No recipient has that handle", 409: "The recipient has copies: kept on record"}
    ),
)
def remove_recipient(handle: str, s: ServiceDep) -> Response:
    """Remove a recipient who has received no copies."""
    s.ws.remove_recipient(handle)
    return Response(status_code=204)
