#!/usr/bin/env bash
# The README's way in, tried as a newcomer would: in a fresh Debian 12
# container with IPv6 off (Docker's default, made explicit), run the
# README's prerequisite block and test command, taken from README.md itself
# (the fenced blocks after its `<!-- prerequisites: …` and
# `<!-- test command: …` markers), on a copy of this checkout without
# `target/`, so everything is built from nothing.
#
#   scripts/fresh-debian.sh            # a clean build and the suite: 40+ minutes on two busy cores
#
# Needs Docker and the image debian:bookworm-slim (on a machine that
# reaches no image registry, scripts/standin-images.sh builds a stand-in
# under that name). The container reaches Debian's mirror and crates.io.
# Environment: FRESH_IMAGE (default debian:bookworm-slim), FRESH_NAME (the
# container's name, default fresh-debian-<pid>). Exits with the test
# command's status.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Debian docker.io client (see docs/ci.md: the other one lacks buildx).
export PATH="/usr/bin:$PATH"

image="${FRESH_IMAGE:-debian:bookworm-slim}"
name="${FRESH_NAME:-fresh-debian-$$}"

# The first fenced block after the line starting `<!-- $1`.
block() {
    awk -v marker="<!-- $1" '
        index($0, marker) == 1 { armed = 1; next }
        armed && /^```/ { if (inside) exit; inside = 1; next }
        inside { print }
    ' README.md
}

prerequisites="$(block 'prerequisites:')"
tests="$(block 'test command:')"
if [ -z "$prerequisites" ] || [ -z "$tests" ]; then
    echo "fresh-debian: README.md has no prerequisites or test command block" >&2
    exit 2
fi
docker image inspect "$image" >/dev/null 2>&1 || {
    echo "fresh-debian: image $image is missing (scripts/standin-images.sh builds a stand-in)" >&2
    exit 2
}

printf '==> README prerequisites\n%s\n==> README test command\n%s\n' "$prerequisites" "$tests"

# Run as given, line by line, with `set -e`: the first failing line stops
# the run. DEBIAN_FRONTEND only keeps apt from asking a terminal there is not.
script=$(cat <<EOF
set -eu
mkdir /src
tar -C /project --exclude=./target --exclude=./fuzz/target -cf - . | tar -C /src -xf -
cd /src
start=\$(date +%s)
echo "==> prerequisites"
$prerequisites
echo "==> prerequisites took \$(( \$(date +%s) - start )) s; \$(rustc --version); IPv6 off: \$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6)"
start=\$(date +%s)
echo "==> tests"
status=0
$tests || status=\$?
echo "==> tests took \$(( \$(date +%s) - start )) s, status \$status"
exit \$status
EOF
)

exec docker run --rm --name "$name" \
    --sysctl net.ipv6.conf.all.disable_ipv6=1 \
    -e DEBIAN_FRONTEND=noninteractive \
    -v "$PWD:/project:ro" \
    "$image" bash -c "$script" </dev/null
