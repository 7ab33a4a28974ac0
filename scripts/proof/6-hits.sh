# shellcheck shell=bash
# Step 6 proves the hit counter's hits/docker-compose.yml keeps its count:
# it goes on across removing and re-creating the Redis container and across
# `down` + `up` (a named volume); /metrics answers 404 on :5000 and is
# served by the admin listener (app:8083, scraped from the project's
# network).

hits_cid() { hits_compose ps -q "$1" | head -n1; }
hits_healthy() { [ "$(container_state "$(hits_cid "$hits_app")")" = "running healthy" ]; }
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

proof_hits() {
    local hits_app want got code hits_net answer
    step "6. hits/docker-compose.yml: the count survives re-creating Redis, and down + up; metrics on app:8083 only"
    hits_compose down -v --remove-orphans >/dev/null 2>&1 || true
    require_ports_free 5000
    run_quiet "hits: compose up -d --build" hits_compose up -d --build
    hits_app="$(hits_compose config --services | grep -vx db | head -n1)"
    wait_until 120 "hits ($hits_app) healthy" hits_healthy
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
}
