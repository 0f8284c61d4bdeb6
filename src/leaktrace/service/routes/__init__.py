"""The API's routes, one router per resource; ``create_app`` mounts them under ``/api``."""

from . import jobs, media, recipients, traces

__all__ = ["jobs", "media", "recipients", "traces"]
