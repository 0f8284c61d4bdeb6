"""The one exception tree of leaktrace.

::

    LeaktraceError
    ├── MediaError              a file that cannot be read or written as an image
    │   ├── UnsupportedMediaError   not an image format we read, or an unsupported pixel layout
    │   └── ImageTooLargeError      above the decompression-bomb limit
    ├── ImageArrayError         an array the engine cannot mark or test (dtype, layout, size)
    ├── KeyFileError            a key file that is missing, malformed or unsafe
    ├── DetectionInputError     arguments to ``detect`` that cannot be tested (no candidates, ...)
    └── WorkspaceError          the registry refuses: no workspace, one already there, ...
        └── RecipientError          unknown or duplicate handle, malformed handle or CSV row

Library code raises these (wrapping OpenCV/Pillow errors with ``raise ... from exc``); the
CLI maps them to a message and an exit code, the service to a 4xx JSON body.
"""

from __future__ import annotations

__all__ = [
    "DetectionInputError",
    "ImageArrayError",
    "ImageTooLargeError",
    "KeyFileError",
    "LeaktraceError",
    "MediaError",
    "RecipientError",
    "UnsupportedMediaError",
    "WorkspaceError",
]


class LeaktraceError(Exception):
    """Root of every error leaktrace raises on purpose."""


class MediaError(LeaktraceError):
    """An image file could not be read or written."""


class UnsupportedMediaError(MediaError):
    """The data is not an image in a format or pixel layout leaktrace handles."""


class ImageTooLargeError(MediaError):
    """The image has more pixels than the decompression-bomb limit allows."""


class ImageArrayError(LeaktraceError, ValueError):
    """An image array has a dtype, layout or size the engine cannot work with."""


class KeyFileError(LeaktraceError):
    """The secret key file is missing, malformed or would be overwritten."""


class DetectionInputError(LeaktraceError):
    """``detect`` was called with arguments it cannot test."""


class WorkspaceError(LeaktraceError):
    """The workspace is missing, already exists, or refuses an operation."""


class RecipientError(WorkspaceError):
    """An unknown, duplicate or malformed recipient (or recipient CSV row)."""
