# shellcheck shell=bash
# Step 9, the EXIT trap: after a failure, the diagnostics (compose ps and
# logs, the stack's tasks); then, whatever happened, removes what the proof
# created (every project and its volumes, the stack, the swarm and its
# gateway bridge if the proof made them, untagged older builds of our
# images; the images themselves only with PROOF_KEEP_IMAGES=0) and prints
# the summary with each step's time and the pass/fail counts.

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [ "$rc" != 0 ]; then
        printf '\n--- diagnostics (exit %s) ---\n' "$rc" >&2
        compose_seed ps >&2 2>/dev/null
        compose_seed logs --no-color --tail=40 >&2 2>/dev/null
        if [ -n "$(docker ps -aq --filter "label=com.docker.compose.project=${PROJECT}mon")" ]; then
            mon_compose ps >&2 2>/dev/null
            mon_compose logs --no-color --tail=20 >&2 2>/dev/null
        fi
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
    mon_compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1
    [ -x "$VENV/bin/docker-compose" ] && "$VENV/bin/docker-compose" -p "${PROJECT}v2" -f "$ROOT/docker-compose.yml" \
        --profile seed down -v --remove-orphans --timeout 10 >/dev/null 2>&1
    ha_compose --profile seed down -v --remove-orphans --timeout 10 >/dev/null 2>&1
    [ -f "$ROOT/hits/docker-compose.yml" ] && hits_compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1
    if docker stack ls 2>/dev/null | grep -q "^$STACK "; then
        docker stack rm "$STACK" >/dev/null 2>&1
        for _ in $(seq 1 60); do
            [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] && break
            sleep 1
        done
    fi
    docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker volume rm >/dev/null 2>&1
    if [ "$SWARM_CREATED" = 1 ]; then
        docker swarm leave --force >/dev/null 2>&1
        # the ingress network's sandbox goes a moment after the swarm
        for _ in $(seq 1 30); do
            docker network ls --format '{{.Name}}' | grep -qx ingress || break
            sleep 1
        done
        if [ "$GWBRIDGE_EXISTED" = 0 ]; then
            for _ in $(seq 1 10); do
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
