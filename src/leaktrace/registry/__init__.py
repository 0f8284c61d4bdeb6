"""The registry: a workspace's records (SQLite or PostgreSQL through SQLAlchemy) and files."""

from .codebook import Codebook
from .copies import Batch, Claim, CopyRecord, file_sha256, part_path
from .models import Case, CaseExport, Copy, Job, Media, Recipient, Scan, ScanFile, Token, Trace
from .recipients import Imported
from .scans import SETTINGS
from .workspace import Workspace, default_home

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
