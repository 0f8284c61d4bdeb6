#!/usr/bin/env bash
# The everyday workflow on the sample photos and clip in examples/media (nothing outside this
# repository): a workspace, five recipients, copies of three photos, one copy leaked through a
# social network, traced to its recipient with an evidence report; then a video clip's copies,
# one trimmed, shrunk and re-encoded, traced the same way.
# Usage: examples/quickstart.sh [WORKDIR]   (default: ./quickstart-out; uses .venv if present)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
media="$here/examples/media"
bin="$here/.venv/bin"
if [ ! -x "$bin/leaktrace" ]; then
    command -v leaktrace >/dev/null || { echo "install leaktrace first (see README.md)"; exit 2; }
    bin="$(dirname "$(command -v leaktrace)")"
fi
work="${1:-quickstart-out}"
if [ -e "$work" ] && [ -n "$(ls -A "$work")" ] && [ ! -e "$work/.leaktrace-quickstart" ]; then
    echo "$work exists and is not an earlier quickstart folder; name another one"; exit 2
fi
rm -rf "$work" && mkdir -p "$work" && cd "$work" && touch .leaktrace-quickstart
export LEAKTRACE_HOME="$PWD/workspace"

"$bin/leaktrace" init
printf 'handle,name,email\nalice,Alice A.,alice@example.com\nbob,Bob B.,bob@example.com\ncarol,Carol C.,carol@example.com\ndave,Dave D.,dave@example.com\nerin,Erin E.,erin@example.com\n' > patrons.csv
"$bin/leaktrace" recipients import patrons.csv
"$bin/leaktrace" embed "$media/mountains_ryan-schroeder_1920.jpg" \
    "$media/kodim05.png" "$media/kodim15.png" --all -o copies

# bob's copy of the mountain photo is re-shared: longest side 1080, JPEG 72, metadata stripped.
"$bin/python" - <<'PY'
import leaktrace as lt
from leaktrace import attacks
copy = lt.read_image("copies/bob/mountains_ryan-schroeder_1920.jpg")
leak = attacks.rescale(copy, 1080 / max(copy.shape[:2]))
lt.write_image("leaked.jpg", leak, quality=72)
PY

echo "--- tracing leaked.jpg"
"$bin/leaktrace" trace leaked.jpg --report evidence.html
# A video the same way: carol's copy of the 8-second sample clip, trimmed to 6 s, shrunk to
# 240p and re-encoded at CRF 28 (a clip under a minute is encoded once per recipient).
"$bin/leaktrace" embed "$media/clip_640x360_25fps.mp4" --to alice --to carol -o copies
"$bin/python" - <<'PY'
from pathlib import Path
from leaktrace.video import attacks
cut = attacks.trim(Path("copies/carol/clip_640x360_25fps.mp4"), Path("cut.mp4"), start=1, duration=6)
attacks.reencode(attacks.scale(cut, Path("small.mp4"), height=240), Path("leaked.mp4"), crf=28)
PY
echo "--- tracing leaked.mp4"
"$bin/leaktrace" trace leaked.mp4 --report evidence-video.html
echo "--- tracing a photo that was never sent (exit status 1 expected)"
status=0; "$bin/leaktrace" trace "$media/kodim20.png" || status=$?
[ "$status" -eq 1 ] || { echo "expected exit status 1, got $status"; exit 1; }
echo "--- evidence report: $PWD/evidence.html"
