"""``/api/copies``: every copy made, or those sent to one recipient."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ..deps import ServiceDep
from ..schemas import CopyOut, errors
from .media import copy_out, served

__all__ = ["router"]

router = APIRouter(prefix="/copies", tags=["copies"])


@router.get("", responses=errors({404: "No recipient has that handle"}))
def list_copies(
    s: ServiceDep,
    to: Annotated[str | None, Query(description="Only the copies sent to this handle.")] = None,
) -> list[CopyOut]:
    """Every copy made, oldest first: who got which original, when (only those sent to one
    recipient with ``to``)."""
    copies = s.ws.copies(to=to)
    media = {m.id: m for m in s.ws.media()}
    made = {i: served(s.ws, media[i]) for i in {c.media_id for c in copies}}
    return [copy_out(c, made[c.media_id]) for c in copies]
