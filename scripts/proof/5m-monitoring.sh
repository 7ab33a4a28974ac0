# shellcheck shell=bash
# Step 5m proves the `monitoring` profile of docker-compose.yml: Prometheus
# comes up healthy, publishes its UI on 127.0.0.1:9090 only, loads the rules
# of monitoring/rules/ and scrapes every target (`up == 1` for vote, result
# and worker, through its HTTP API); with the worker stopped while the seed
# posts votes, the backlog alert (BallotBacklogNotStored) turns pending or
# firing in /api/v1/alerts; with the worker started again and more votes
# stored, it resolves. Its own compose project, so it runs alone too
# (PROOF_SKIP="static compose hits swarm ha"). Takes about a minute (51 s
# here with the images built).

proof_monitoring() {
    mon_up       # 5m-a
    mon_backlog  # 5m-b
    mon_down     # 5m-c
}

MON_ALERT=BallotBacklogNotStored

mon_compose() { "${COMPOSE[@]}" -p "${PROJECT}mon" -f "$ROOT/docker-compose.yml" --profile monitoring "$@"; }
mon_cid() { mon_compose ps -q "$1" | head -n1; }

# the answer of Prometheus's HTTP API at PATH (on the published port)
prom_api() { curl -fsS --max-time 10 "http://127.0.0.1:9090/api/v1/$1"; }

# every service's targets answer their scrape: `up` is 1 for each
mon_all_up() {
    local up
    up="$(prom_api 'query?query=up' | jq -r '[.data.result[] | select(.value[1] == "1") | .metric.service] | unique | join(" ")')" || return 1
    [ "$up" = "result vote worker" ]
}

# the state of the backlog alert: pending, firing, or nothing
mon_alert_state() {
    prom_api alerts | jq -r --arg a "$MON_ALERT" '[.data.alerts[] | select(.labels.alertname == $a) | .state] | first // "inactive"'
}
mon_alert_raised() { case "$(mon_alert_state)" in pending | firing) return 0 ;; *) return 1 ;; esac; }
mon_alert_resolved() { [ "$(mon_alert_state)" = inactive ]; }

mon_healthy() {
    local s id
    for s in "$@"; do
        id="$(mon_cid "$s")"
        [ -n "$id" ] && [ "$(container_state "$id")" = "running healthy" ] || return 1
    done
}

mon_seed() {
    docker run --rm --network "${PROJECT}mon_front-tier" voting-app/seed:latest \
        --target http://vote/ --wait 60 "$@"
}

mon_up() {
    local bindings rules
    step "5m-a. --profile monitoring: Prometheus healthy on 127.0.0.1:9090, rules loaded, every target up"
    mon_compose down -v --remove-orphans >/dev/null 2>&1 || true
    require_ports_free 5000 5001 5432 6379 9090
    run_quiet "compose --profile monitoring up -d" mon_compose up -d
    wait_until 180 "every service healthy, prometheus included" mon_healthy redis db worker vote result prometheus
    bindings="$(docker port "$(mon_cid prometheus)" 9090/tcp | tr '\n' ' ')"
    [ "$bindings" = "127.0.0.1:9090 " ] || die "prometheus is published on '$bindings', not on 127.0.0.1:9090 only"
    log "prometheus published on ${bindings% } only"
    rules="$(prom_api rules | jq -r '[.data.groups[].rules[]] | length')" || die "GET /api/v1/rules failed"
    ((rules >= 18)) || die "prometheus loaded $rules rules, not those of monitoring/rules/"
    log "$rules rules loaded"
    wait_until 60 "up == 1 for vote, result and worker" mon_all_up
    prom_api 'query?query=up' | jq -r '.data.result[] | "\(.metric.service) \(.metric.instance) up=\(.value[1])"' | sed 's/^/    | /'
    pass
}

mon_backlog() {
    step "5m-b. Worker stopped while the seed posts: $MON_ALERT pending or firing; worker back: resolved"
    run_quiet "compose stop worker" mon_compose stop worker
    run_quiet "seed run (300 a, 200 b) with the worker stopped" mon_seed -a 300 -b 200 -c 20
    log "500 votes posted with the worker stopped"
    wait_until 90 "$MON_ALERT pending or firing in /api/v1/alerts" mon_alert_raised
    log "$MON_ALERT is $(mon_alert_state)"
    run_quiet "compose start worker" mon_compose start worker
    wait_until 60 "worker healthy again" mon_healthy worker
    # Votes stored while Prometheus watches: the worker's counter rises
    # between two scrapes (a worker that drained the backlog before its
    # first scrape shows no rate).
    run_quiet "seed run (100 a, 100 b) with the worker back" mon_seed -a 100 -b 100 -c 10
    wait_until 90 "$MON_ALERT resolved" mon_alert_resolved
    pass
}

mon_down() {
    step "5m-c. --profile monitoring: down -v"
    run_quiet "compose --profile monitoring down -v" mon_compose down -v --remove-orphans
    [ -z "$(docker ps -aq --filter "label=com.docker.compose.project=${PROJECT}mon")" ] || die "containers left"
    pass
}
