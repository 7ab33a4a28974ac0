# shellcheck shell=bash
# Step 1 proves there is a Docker engine to run the rest on: installed and
# started when absent (scripts/standin-images.sh --engine-only), answering,
# with curl, python3 and the compose command (PROOF_COMPOSE) on the host.

proof_engine() {
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
}
