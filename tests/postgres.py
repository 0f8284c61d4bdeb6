"""A throwaway PostgreSQL server for the tests: ``initdb`` and ``pg_ctl`` in a temporary folder,
reached over a Unix socket only (no TCP port), with a fresh database per test.

The server refuses to run as root, so when the tests run as root (CI's machine, this one)
it runs as the unprivileged ``postgres`` user that Debian's package creates (or ``nobody``),
through ``runuser``; its folder is handed to that user. The tests connect over the socket,
which root may always open and anyone else may open as the same user.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["Server", "binaries", "start"]


def binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (on PATH, else Debian's newest), or None."""
    found = shutil.which("pg_ctl")
    folders = [Path(found).resolve().parent] if found else []
    folders += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in folders:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _server_user() -> str | None:
    """Who runs the server: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run as")


class Server:
    """A running server; :meth:`database` makes a fresh database and returns its URL."""

    def __init__(self, bin_dir: Path, root: Path, user: str | None) -> None:
        self.bin_dir, self.root, self.user = bin_dir, root, user
        self.data = root / "data"
        self._names = itertools.count()

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        done = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}{tail}")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://leaktrace@/{database}?host={self.root}"

    def database(self) -> str:
        """A new, empty database's SQLAlchemy URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(host=str(self.root), user="leaktrace", dbname="postgres") as conn:
            conn.autocommit = True
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start(bin_dir: Path) -> Server:
    """Start a server in a new temporary folder (the caller stops it)."""
    user = _server_user()
    # Not under pytest's temporary folders: they are private to us, and the server's user
    # must reach its own folder.
    root = Path(tempfile.mkdtemp(prefix="leaktrace-pg-"))
    server = Server(bin_dir, root, user)
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        os.chmod(root, 0o700)
        server._run(
            str(bin_dir / "initdb"),
            "-D",
            str(server.data),
            "-U",
            "leaktrace",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        # Tests only: no durability, no TCP; the socket in the server's folder.
        options = (
            f"-k {root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=100"
        )
        server._run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(server.data),
            "-o",
            options,
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server
