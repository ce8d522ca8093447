#!/usr/bin/env bash
# Remake examples/render_screenshot.png: the documented check that the page written by
# `gradellm render --html` shows its heatmaps in a real browser, headless Chromium.
#
#   apt-get install chromium          # Debian's package; or CHROMIUM=/path/to/chrome
#   examples/screenshot.sh [OUT.png]  # default: examples/render_screenshot.png
#
# Two SST-2-style sentences, three methods, SmolLM2 on the CPU (about a minute with the model cached).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-examples/render_screenshot.png}")
gradellm=${GRADELLM:-.venv/bin/gradellm}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%s\n' '{"id": "sst2-a", "text": "a gorgeous, witty, seductive movie."}' \
    '{"id": "sst2-b", "text": "the plot is paper-thin and the acting is unbelievably wooden."}' > "$work/input.jsonl"
"$gradellm" explain --input "$work/input.jsonl" --method grad-ellm,saliency,attention --device cpu \
    --output "$work/demo3.jsonl" > /dev/null
"$gradellm" render "$work/demo3.jsonl" --method all --html "$work/demo3.html"
"${CHROMIUM:-chromium}" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,800 \
    --screenshot="$out" "file://$work/demo3.html" 2>/dev/null
echo "screenshot.sh: wrote $out"
