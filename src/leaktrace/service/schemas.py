"""Request and response bodies of the API, and the error answers each route documents.

The constraints written here are the registry's own (it enforces them with its own messages),
stated in the OpenAPI so that clients and generated tests know them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from ..links import DEFAULT_EXPIRY, MAX_EXPIRY
from ..registry.recipients import EMAIL_MAX, HANDLE_MAX, NAME_MAX
from ..workflow import MAX_STRENGTH, MIN_STRENGTH

__all__ = [
    "CaseDetailOut",
    "CaseOut",
    "ScanOut",
    "HANDLE_PATTERN",
    "TEXT_PATTERN",
    "CopiesIn",
    "CopyOut",
    "ErrorOut",
    "Health",
    "ImportOut",
    "JobOut",
    "JobStatus",
    "LinkOut",
    "LinksIn",
    "MediaOut",
    "PersonOut",
    "RecipientIn",
    "RecipientOut",
    "TraceOut",
    "TraceSummary",
    "errors",
    "utc",
]

#: What the registry accepts as a handle (matched whole).
HANDLE_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{HANDLE_MAX - 1}}}$"
# Control characters, line and paragraph separators, bidirectional overrides and isolates:
# what the registry refuses in names and emails.
_CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
TEXT_PATTERN = rf"^[^{_CONTROL}]*$"
_EMAIL_PATTERN = rf"^([^@\s{_CONTROL}]+@[^@\s{_CONTROL}]+\.[^@\s{_CONTROL}]+)?$"

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]


def utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; they were stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ErrorOut(BaseModel):
    """Every error the service answers (4xx) has this body."""

    detail: str = Field(description="One line (one per file for a batch) saying what was wrong.")


def errors(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for these error statuses, each with the body it sends."""
    return {code: {"model": ErrorOut, "description": text} for code, text in described.items()}


# -- recipients --------------------------------------------------------------------------------
def _text(value: str) -> str:
    """JSON may escape half of a UTF-16 pair (``"\\ud800"``): that is not text, and could not
    be stored."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not text (it holds half of a UTF-16 surrogate pair)") from None
    return value


Text = Annotated[str, AfterValidator(_text)]
# The registry checks these itself (with messages that say what to do); the patterns document
# them without a second, terser check here.
Handle = Annotated[Text, Field(json_schema_extra={"pattern": HANDLE_PATTERN})]


class RecipientIn(BaseModel):
    handle: Handle = Field(description="Letters, digits, '.', '_' or '-'; unique ignoring case.")
    name: Text = Field("", json_schema_extra={"maxLength": NAME_MAX, "pattern": TEXT_PATTERN})
    email: Text = Field("", json_schema_extra={"maxLength": EMAIL_MAX, "pattern": _EMAIL_PATTERN})


class RecipientOut(BaseModel):
    handle: str
    name: str
    email: str
    copies: Annotated[
        int, Field(description="How many originals this recipient has a copy of.")
    ] = 0


class ImportOut(BaseModel):
    imported: int
    recipients: list[RecipientOut]
    skipped: list[str] = Field(
        default_factory=list,
        description="With skip_existing: the handles of the rows already registered.",
    )


class PersonOut(BaseModel):
    """The person a verdict names, as the recipients table holds them."""

    handle: str
    name: str = ""
    email: str = ""


# -- media and copies --------------------------------------------------------------------------
class MediaOut(BaseModel):
    id: int
    name: str = Field(
        description="The file name it was uploaded with (a video's with the suffix of its "
        "copies: .mp4, or .mkv when its sound cannot go in MP4)."
    )
    kind: Literal["image", "video"] = "image"
    sha256: str
    width: int
    height: int
    size: int
    duration: float | None = Field(
        None,
        description="A video's length in seconds, once it is marked (its first batch of "
        "copies); null for a photo.",
    )
    copies: int = Field(description="How many recipients have a copy.")
    created: datetime
    warnings: list[str] = Field(
        default_factory=list,
        description="On upload: why copies of this picture may not survive heavy edits.",
    )


class CopyOut(BaseModel):
    handle: str
    media_id: int | None = Field(None, description="The original it is a copy of.")
    media_name: str | None = None
    file: str = Field(description="<handle>/<file name>, as in a job's zip.")
    sha256: str
    created: datetime
    download_url: str | None = Field(
        None,
        description="This recipient's copy (the newest the service made), while its file is "
        "there; null for a copy made elsewhere (by the CLI).",
    )


class CopiesIn(BaseModel):
    recipients: Annotated[list[Handle], Field(min_length=1)] | Literal["all"] = Field(
        description='Handles, or "all": everyone registered when the job is accepted.'
    )
    strength: float = Field(
        1.0,
        ge=MIN_STRENGTH,
        le=MAX_STRENGTH,
        allow_inf_nan=False,
        strict=True,  # a number: true/false is not a strength (Schemathesis found it taken)
        description="Mark strength: 1 ≈ 48 dB PSNR, 2 ≈ 42 dB.",
    )


def _whole(value: object) -> object:
    """1.0 is an integer to JSON Schema (and so to clients): taken as 1. A bool or a string
    still is not a number of seconds (the field is strict)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class LinksIn(BaseModel):
    recipients: Annotated[list[Handle], Field(min_length=1)] | Literal["all"] = Field(
        description='Handles, or "all": everyone registered now.'
    )
    expires_in: Annotated[int, BeforeValidator(_whole)] = Field(
        int(DEFAULT_EXPIRY.total_seconds()),
        ge=1,
        le=int(MAX_EXPIRY.total_seconds()),
        strict=True,
        description="Seconds the links work (default 7 days, at most 366 days).",
    )


class LinkOut(BaseModel):
    handle: str
    url: str = Field(
        description="The link to send: it downloads this recipient's copy (made when first "
        "opened) without an API token, until it expires or links are revoked."
    )
    expires: datetime


class JobOut(BaseModel):
    id: str
    media_id: int
    media_name: str
    status: JobStatus
    done: int = Field(description="Copies made (or found made) so far.")
    total: int = Field(description="Copies the job makes: one per recipient, fixed when accepted.")
    phase: Literal["marking", "copies"] | None = Field(
        None,
        description='While the job runs: "marking" while a video is marked (its first batch: '
        'one encode, frame by frame), then "copies"; null before its work starts and once it '
        "has ended.",
    )
    frames: int | None = Field(None, description="While marking: frames encoded so far.")
    frames_total: int | None = Field(None, description="While marking: the video's frames.")
    strength: float
    errors: list[str]
    warnings: list[str]
    created: datetime
    finished: datetime | None
    download_url: str | None = Field(
        description="Set once the job has ended (done, cancelled or failed) with copies made."
    )


# -- traces ------------------------------------------------------------------------------------
class Candidate(BaseModel):
    handle: str | None = Field(
        None, description="Absent in a no-match: its scores are shown, nobody is named."
    )
    score: float


class Accused(BaseModel):
    handle: str
    name: str = ""
    email: str = ""
    p_value: float = Field(description="This recipient's own false-accusation probability.")
    log10_p_value: float
    score: float


class TraceOut(BaseModel):
    """What ``leaktrace trace --json`` prints, plus where the trace and its report are kept."""

    model_config = ConfigDict(extra="allow")

    verdict: str = Field(
        description='"match", "no_match", or "original" (the leak is a registered original).'
    )
    recipient: str | None = None
    person: PersonOut | None = Field(None, description="Who a match names; null otherwise.")
    p_value: float | None = None
    log10_p_value: float | None = None
    mode: str | None = None
    media: dict[str, Any] | None = None
    accused: list[Accused] = Field(
        default_factory=list,
        description="Everyone whose own false-accusation probability passes the threshold, "
        "most suspect first: several when the leak combines several recipients' copies.",
    )
    candidates: list[Candidate] = Field(
        default_factory=list,
        description="The most suspect candidates (at most 1,000), best first, with their scores.",
    )
    candidates_tested: int | None = Field(
        None, description="How many were tested (absent in older records, which list them all)."
    )
    match_score: float | None = Field(
        None, description="The score z a match needs on this leak (null: none could match)."
    )
    message: str = ""
    leak: dict[str, Any] | None = None
    threshold: float | None = None
    trace_id: int
    report_url: str


class TraceSummary(BaseModel):
    id: int
    name: str
    verdict: str
    recipient: str | None
    person: PersonOut | None = None
    media_id: int | None = None
    p_value: float | None
    created: datetime


class Health(BaseModel):
    status: str
    version: str


# -- scans and cases ---------------------------------------------------------------------------
ScanStatus = Literal["queued", "running", "done", "failed", "stopped"]
FileStatus = Literal["match", "no_match", "original", "unrelated", "unreadable"]


class ScanFileOut(BaseModel):
    name: str
    sha256: str
    status: FileStatus = Field(
        description='"match" (in a case), "no_match" (one of your media, nobody named), '
        '"original" (your unmarked original), "unrelated" (not one of your media), '
        '"unreadable" (not a picture or video leaktrace reads).'
    )
    reason: str = Field(description="The verdict's line, or why the file cannot be read.")
    case_id: int | None = None
    trace_id: int | None = None


class ScanOut(BaseModel):
    id: str
    status: ScanStatus
    done: int = Field(description="Files judged so far.")
    total: int = Field(description="Files the scan judges.")
    errors: list[str]
    created: datetime
    finished: datetime | None
    files: list[ScanFileOut] = Field(
        default_factory=list, description="Every file judged so far, in the order sent."
    )


class CaseMediaOut(BaseModel):
    id: int
    name: str
    sha256: str
    registered: datetime
    files: int
    leaks: int = Field(description="Distinct leaks among its files (re-shares are one leak).")
    log10_p: float = Field(description="log10 of its strongest file's probability.")


class CaseFileOut(BaseModel):
    id: int
    path: str
    name: str
    sha256: str
    media_id: int
    trace_id: int
    traced: datetime
    log10_p: float
    leak: int
    reshare: bool
    report_url: str


class CaseOut(BaseModel):
    id: int
    leakers: list[PersonOut]
    media: list[CaseMediaOut]
    files: int
    leaks: int
    p_value: float = Field(
        description="The combined false-accusation probability (0 when below what a float "
        "holds: see log10_p)."
    )
    log10_p: float
    log10_p_per_person: dict[str, float]
    strongest_log10_p: float = Field(description="log10 of the strongest single file's.")
    eligible: int = Field(
        description="Recipients who received every media item of the case (what the combined "
        "probability is corrected for)."
    )
    created: datetime
    export_url: str


class CaseDetailOut(CaseOut):
    file_list: list[CaseFileOut]
