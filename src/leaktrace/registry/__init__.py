"""The registry: a workspace's records (SQLite or PostgreSQL through SQLAlchemy) and files."""

from .codebook import Codebook
from .models import Copy, Job, Media, Recipient, Token, Trace
from .workspace import (
    Batch,
    CopyRecord,
    Imported,
    Workspace,
    default_home,
    file_sha256,
    part_path,
)

__all__ = [
    "Batch",
    "Codebook",
    "Copy",
    "CopyRecord",
    "Imported",
    "Job",
    "Media",
    "Recipient",
    "Token",
    "Trace",
    "Workspace",
    "default_home",
    "file_sha256",
    "part_path",
]
