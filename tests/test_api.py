import importlib

import leaktrace as lt
from leaktrace import errors

MODULES = [
    "attacks",
    "bundle",
    "cases",
    "combine",
    "cli",
    "cluster",
    "codes",
    "detect",
    "embed",
    "errors",
    "identify",
    "keys",
    "mask",
    "media",
    "registry",
    "report",
    "scan",
    "transform",
    "workflow",
]

EXPECTED = {
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
}


def test_public_api_is_what_we_mean():
    assert set(lt.__all__) == EXPECTED
    assert all(hasattr(lt, name) for name in lt.__all__)


def test_every_module_declares_what_it_exports():
    for name in MODULES:
        module = importlib.import_module(f"leaktrace.{name}")
        assert all(hasattr(module, n) for n in module.__all__), name


def test_every_error_is_a_leaktrace_error():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), lt.LeaktraceError)
