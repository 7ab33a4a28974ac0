# shellcheck shell=bash
# Step 5 proves docker-compose.yml works as a user runs it, with
# docker-compose 1.29: `up -d --build`, every service healthy; a vote
# through :5000 with a cookie shows on :5001 (page and WebSocket) and a
# changed vote replaces it; `--profile seed` adds 3,000 votes; /metrics
# answers 404 on :5000 and :5001 and is served by each service's admin
# listener (scraped from back-tier); Redis SIGKILLed with 500 ballots
# queued and Postgres stopped while 500 more come in lose none; worker,
# redis and db unreachable from front-tier; db and redis published on
# 127.0.0.1 only; `down -v`. Then the same file with Compose v2:
# `up --wait`, a vote, the seed profile, `down -v`.

proof_compose() {
    compose_up           # 5a
    compose_vote         # 5b
    compose_metrics      # 5c
    compose_seed_votes   # 5d
    compose_store_faults # 5e
    compose_networks     # 5f
    compose_down         # 5g
    compose_v2           # 5h
}

# -------------------------------------- what the sub-steps ask of the project
# container ID of a compose service (first replica)
cid() { compose ps -q "$1" | head -n1; }

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

# the seed image against the vote service of the compose project, no verify
seed_run() {
    docker run --rm --network "${PROJECT}_front-tier" voting-app/seed:latest \
        --target http://vote/ --wait 60 "$@"
}

# probe NETWORK HOST PORT: can a container on NETWORK open HOST:PORT?
probe() {
    docker run --rm --network "$1" --entrypoint bash "$PROBE_IMAGE" \
        -c "timeout 5 bash -c 'exec 3<>/dev/tcp/$2/$3'" >/dev/null 2>&1
}

# ------------------------------------------------------------------ sub-steps
compose_up() {
    step "5a. docker-compose.yml: up -d --build, every service healthy"
    compose_seed down -v --remove-orphans >/dev/null 2>&1 || true
    require_ports_free 5000 5001 5432 6379
    run_quiet "compose up -d --build" compose up -d --build
    grep -vE '^#|^ ---> |^Step |^Removing intermediate|^$' "$WORK/out.log" | sed 's/^/    | /' || true
    wait_healthy 180 redis db worker vote result
    pass
}

compose_vote() {
    local page voter result feed
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
}

compose_metrics() {
    local port code back target svc metric answer ready
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
}

compose_seed_votes() {
    local a0 b0 seed_id seed_rc
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
}

compose_store_faults() {
    local a0 b0 feed
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
}

compose_networks() {
    local front back target pair svc port bindings published
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
}

compose_down() {
    step "5g. docker-compose.yml: down -v"
    run "compose down -v" compose_seed down -v --remove-orphans
    [ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ] || die "containers left"
    [ -z "$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] || die "volumes left"
    [ -z "$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] || die "networks left"
    pass
}

compose_v2() {
    local v2 feed seed_id seed_rc
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
}
