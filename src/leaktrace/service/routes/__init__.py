"""The API's routes, one router per resource; ``create_app`` mounts them under ``/api``."""

from . import cases, copies, jobs, links, media, recipients, traces

__all__ = ["cases", "copies", "jobs", "links", "media", "recipients", "traces"]
