"""The registry: a workspace's records (SQLite or PostgreSQL through SQLAlchemy) and files."""

from .codebook import Codebook
from .models import Case, CaseExport, Copy, Job, Media, Recipient, Scan, ScanFile, Token, Trace
from .scans import SETTINGS
from .workspace import (
    Batch,
    Claim,
    CopyRecord,
    Imported,
    Workspace,
    default_home,
    file_sha256,
    part_path,
)

__all__ = [
    "SETTINGS",
    "Batch",
    "Case",
    "Claim",
    "CaseExport",
    "Codebook",
    "Copy",
    "CopyRecord",
    "Imported",
    "Job",
    "Media",
    "Recipient",
    "Scan",
    "ScanFile",
    "Token",
    "Trace",
    "Workspace",
    "default_home",
    "file_sha256",
    "part_path",
]
