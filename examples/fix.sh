#!/bin/sh
# Remediation for the README tour (ringfence remediation publish --file examples/fix.sh): removes the bad
# channel file 291, as the public fix for 19 July 2024 did. The agent runs it once on each matching host,
# only after verifying its signature on the channel.
set -eu
dir="${RINGFENCE_CONTENT_DIR:-C:/Windows/System32/drivers/CrowdStrike}"
for f in "$dir"/C-00000291*.sys; do
    [ -e "$f" ] || continue
    rm -f -- "$f"
    echo "removed $f"
done
