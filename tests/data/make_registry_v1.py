"""Regenerate ``registry-v1.sql``: a workspace registry as leaktrace 0.1 (schema 1) left it.

Run from a checkout of the last schema-1 commit (4f18092), e.g.::

    git worktree add /tmp/v1 4f18092
    PYTHONPATH=/tmp/v1/src python tests/data/make_registry_v1.py tests/data/registry-v1.sql

It holds recipients that differ only in case (schema 1 allowed them), two media items, their
copies, a trace and a token. Dates are fixed so the dump is reproducible.
"""

import sqlite3
import sys
import tempfile
from pathlib import Path

import numpy as np

import leaktrace as lt
from leaktrace.registry import Workspace

with tempfile.TemporaryDirectory() as tmp:
    home = Path(tmp) / "ws"
    ws = Workspace.create(home)
    ws.add_recipients(
        [("alice", "Alice A.", "alice@example.com"), ("ALICE", "", ""), ("bob", "", "")]
    )
    rng = np.random.default_rng(1)
    for n in (1, 2):
        src = Path(tmp) / f"photo{n}.png"
        lt.write_image(src, rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
        media = ws.register_media(
            src, sha256=f"{n}" * 64, width=128, height=96, fingerprint=b"\x00" * 8
        )
        for h in ("alice", "bob"):
            ws.record_copy(media, h, f"/copies/{h}/photo{n}.png", f"{n}{h[0]}" * 32)
    ws.record_trace(sha256="f" * 64, name="leak.jpg", result={"verdict": "no_match"}, media=None)
    ws.create_token("old")
    ws.close()
    db = sqlite3.connect(home / Workspace.DB_NAME)
    for table in ("recipients", "media", "copies", "traces", "tokens"):
        db.execute(f"UPDATE {table} SET created = '2026-01-02 03:04:05.000000'")
    db.execute("UPDATE tokens SET digest = 'd' || substr(digest, 2)")
    db.commit()
    Path(sys.argv[1]).write_text("\n".join(db.iterdump()) + "\n")
