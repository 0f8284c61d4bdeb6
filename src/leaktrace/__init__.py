"""leaktrace: invisible per-recipient watermarks that name the source of a leak."""

from __future__ import annotations

__version__ = "0.1.0"  # before the imports: workflow reads it

from .codes import CODE_LENGTH, FORMAT_VERSION
from .detect import DEFAULT_THRESHOLD, Detection, detect, extract, score
from .embed import DEFAULT_PSNR, EmbedPlan, apply, embed, prepare
from .errors import (
    BundleError,
    ClusterError,
    ConflictError,
    DetectionInputError,
    ImageArrayError,
    ImageTooLargeError,
    KeyFileError,
    LeaktraceError,
    MediaError,
    NotFoundError,
    RecipientConflictError,
    RecipientError,
    UnknownRecipientError,
    UnsupportedMediaError,
    WorkspaceError,
)
from .keys import Key
from .media import ImageInfo, inspect_image, read_image, write_image
from .registry import Workspace

__all__ = [
    "CODE_LENGTH",
    "DEFAULT_PSNR",
    "DEFAULT_THRESHOLD",
    "FORMAT_VERSION",
    "BundleError",
    "ClusterError",
    "Detection",
    "ConflictError",
    "DetectionInputError",
    "EmbedPlan",
    "ImageArrayError",
    "ImageInfo",
    "ImageTooLargeError",
    "Key",
    "KeyFileError",
    "LeaktraceError",
    "MediaError",
    "NotFoundError",
    "RecipientConflictError",
    "RecipientError",
    "UnknownRecipientError",
    "UnsupportedMediaError",
    "Workspace",
    "WorkspaceError",
    "__version__",
    "apply",
    "detect",
    "embed",
    "extract",
    "inspect_image",
    "prepare",
    "read_image",
    "score",
    "write_image",
]
