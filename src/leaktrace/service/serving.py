"""``leaktrace serve --processes N``: uvicorn starts N processes, each of which builds its own
app on the workspace from the options the command left in :data:`OPTIONS_ENV`.

The processes share the registry (its transactions are serialised across processes) and the
workspace's files; each has its own job and scan runner, trace limit and cache of prepared
photos. A job or scan is run by one process at a time (each holds a lock file on the one it
runs), so one resumed at start by several is still run once.
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI

from . import create_app

__all__ = ["OPTIONS_ENV", "app_from_environment"]

#: The environment variable holding ``create_app``'s arguments as JSON (no secret in it).
OPTIONS_ENV = "LEAKTRACE_SERVE_OPTIONS"


def app_from_environment() -> FastAPI:
    """The app one server process serves (uvicorn's factory)."""
    options = json.loads(os.environ[OPTIONS_ENV])
    return create_app(options.pop("home"), **options)
