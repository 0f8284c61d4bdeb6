"""``leaktrace serve --processes N``: uvicorn starts N processes, each of which builds its own
app on the workspace from the options the command left in :data:`OPTIONS_ENV`.

The processes share the registry (its transactions are serialised across processes) and the
workspace's files; each has its own job and scan runner, trace limit and cache of prepared
photos. A job or scan is run by one process at a time (each holds a lock file on the one it
runs), so one resumed at start by several is still run once.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from typing import Any

from fastapi import FastAPI

from . import create_app

__all__ = ["OPTIONS_ENV", "HideLinks", "app_from_environment", "log_config"]

#: The environment variable holding ``create_app``'s arguments as JSON (no secret in it).
OPTIONS_ENV = "LEAKTRACE_SERVE_OPTIONS"


def app_from_environment() -> FastAPI:
    """The app one server process serves (uvicorn's factory)."""
    options = json.loads(os.environ[OPTIONS_ENV])
    return create_app(options.pop("home"), **options)


class HideLinks(logging.Filter):
    """Keeps download links' tokens out of the access log: a link is a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            if args[2].startswith("/d/"):
                record.args = (*args[:2], "/d/<link>", *args[3:])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with :class:`HideLinks` on the access log (in every process)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["hide_links"] = {"()": f"{__name__}.HideLinks"}
    config["handlers"]["access"].setdefault("filters", []).append("hide_links")
    return config
