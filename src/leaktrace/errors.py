"""The one exception tree of leaktrace.

::

    LeaktraceError
    ├── MediaError              a file that cannot be read or written as an image
    │   ├── UnsupportedMediaError   not an image format we read, or an unsupported pixel layout
    │   └── ImageTooLargeError      above the decompression-bomb limit
    ├── ImageArrayError         an array the engine cannot mark or test (dtype, layout, size)
    ├── KeyFileError            a key file that is missing, malformed or unsafe
    ├── DetectionInputError     arguments to ``detect`` that cannot be tested (no candidates, ...)
    ├── BundleError             a case bundle that cannot be read (not a zip, no manifest)
    ├── ClusterError            a Dask cluster that cannot be reached, has no workers, or lost them
    ├── LinkError               a download link that does not open a copy
    │   ├── LinkRefusedError        malformed, tampered with, or signed by another workspace
    │   └── LinkGoneError           expired, revoked, or its recipient was removed
    └── WorkspaceError          the registry refuses: no workspace, one already there, ...
        ├── NotFoundError           no such recipient, media item, trace, job or token
        ├── ConflictError           a duplicate, or a record others depend on
        └── RecipientError          malformed handle or CSV row (and, below, the two above)
            ├── UnknownRecipientError   (also a NotFoundError)
            └── RecipientConflictError  (also a ConflictError): a duplicate handle, or
                                        removing someone who has copies

Library code raises these (wrapping OpenCV/Pillow errors with ``raise ... from exc``); the
CLI maps them to a message and an exit code, the service to a 4xx JSON body.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "ClusterError",
    "ConflictError",
    "DetectionInputError",
    "RecipientConflictError",
    "ImageArrayError",
    "ImageTooLargeError",
    "KeyFileError",
    "LeaktraceError",
    "LinkError",
    "LinkGoneError",
    "LinkRefusedError",
    "MediaError",
    "NotFoundError",
    "RecipientError",
    "UnknownRecipientError",
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


class NotFoundError(WorkspaceError):
    """The registry has no record by that name or id."""


class ConflictError(WorkspaceError):
    """The operation clashes with what the registry holds (a duplicate, a record in use)."""


class UnknownRecipientError(RecipientError, NotFoundError):
    """No recipient has that handle."""


class RecipientConflictError(RecipientError, ConflictError):
    """That handle is taken, or the recipient has copies and cannot be removed."""


class BundleError(LeaktraceError):
    """A case's evidence bundle that cannot be read: not a zip, corrupt, or no manifest."""


class ClusterError(LeaktraceError):
    """A batch's Dask cluster cannot be reached, has no workers, or lost the batch's tasks."""


class LinkError(LeaktraceError):
    """A signed download link that does not open a copy."""


class LinkRefusedError(LinkError):
    """A link that is malformed, was tampered with, or was signed by another workspace."""


class LinkGoneError(LinkError):
    """A genuine link that no longer works: expired, revoked, or its recipient removed."""
