"""The API's routes, one router per resource; ``create_app`` mounts them under ``/api``."""

from . import copies, jobs, media, recipients, traces

__all__ = ["copies", "jobs", "media", "recipients", "traces"]
