# shellcheck shell=bash
# Step 8 proves docker-compose.ha.yml (replicated stores) keeps every
# acknowledged vote through the loss of either primary: every service
# healthy, Sentinel and Patroni agree on a primary with its replicas;
# during a seed run the Redis primary's process (restarted by Docker) is
# SIGKILLed three times, each after the last old primary rejoined, then the
# Postgres primary's container (docker kill); each failover is timed,
# voting stands still under 5 s per Redis failover (the seed's report), the
# seed's --verify still sees every acknowledged vote, no more are stored
# than were posted, the old primaries rejoin as replicas; `down -v`.

proof_ha() {
    # what the sub-steps share: the services, and their containers once up
    local HA_SERVICES=(redis-1 redis-2 redis-3 sentinel-1 sentinel-2 sentinel-3 etcd pg-1 pg-2 db worker vote result)
    local -A HA_ID=()
    ha_up               # 8a
    ha_primaries_killed # 8b
    ha_down             # 8c
}

# -------------------------------------- what the sub-steps ask of the project
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

# Who is primary: Sentinel's word for Redis, Patroni's REST API for Postgres.
# docker exec on the containers (HA_ID), not compose exec (a second each):
# the failovers are timed with these.
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
# redis_settled: Sentinel names a primary with 2 replicas whose link is up,
# and each Sentinel sees the 2 others
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

# ha_psql SQL: through HAProxy (the services' endpoint), from the node that is up
ha_psql() {
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

# the failovers' milestones (the kill rounds set old_redis, new_redis, new_pg)
redis_rejoined() {
    hx "$old_redis" redis-cli info replication | tr -d '\r' | grep -qx 'master_link_status:up'
}
new_redis_named() { local p; p="$(redis_primary)" && [ -n "$p" ] && [ "$p" != "$old_redis" ]; }
redis_writable() { [ "$(hx "$new_redis" redis-cli set ha:probe 1)" = OK ]; }
pg_writable() {
    docker exec -e PGPASSWORD=postgres -e PGCONNECT_TIMEOUT=1 "${HA_ID[$new_pg]}" \
        psql -X -q -t -A -v ON_ERROR_STOP=1 -h db -U postgres -d postgres \
        -c "CREATE TABLE IF NOT EXISTS ha_probe (at timestamptz); INSERT INTO ha_probe VALUES (now())"
}

# ------------------------------------------------------------------ sub-steps
ha_up() {
    local s bindings
    step "8a. docker-compose.ha.yml: up -d, all healthy, Sentinel and Patroni settled"
    ha_compose --profile seed down -v --remove-orphans >/dev/null 2>&1 || true
    require_ports_free 5000 5001 5432
    run_quiet "build the Patroni image" ha_compose build pg-1
    log "voting-app/patroni: $(docker image inspect -f '{{.Size}}' voting-app/patroni:latest | awk '{ printf "%.0f MB", $1 / 1e6 }'), FROM postgres:15"
    run_quiet "compose -f docker-compose.ha.yml up -d" ha_compose up -d
    ha_wait_healthy 240 "${HA_SERVICES[@]}"
    for s in "${HA_SERVICES[@]}"; do HA_ID[$s]="$(ha_cid "$s")"; done
    wait_until 60 "Redis: a primary with 2 replicas online, each Sentinel sees the 2 others" redis_settled
    wait_until 60 "Postgres: a primary and a synchronous standby (Patroni)" pg_settled
    log "Redis primary (Sentinel): $(redis_primary); Postgres primary (Patroni): $(pg_primary)"
    bindings="$(docker port "$(ha_cid db)" 5432/tcp | tr '\n' ' ')"
    [ "$bindings" = "127.0.0.1:5432 " ] || die "db (HAProxy) is published on '$bindings', not on 127.0.0.1:5432 only"
    log "db (HAProxy, the primary's endpoint) published on 127.0.0.1:5432 only"
    pass
}

ha_primaries_killed() {
    local rate seed_total seed_a seed_b seed_name seed_id round old_redis new_redis stored pid
    local t0 t_promoted t_writable old_pg new_pg t_pg before seed_rc ok_a ok_b failed windows db_a db_b
    step "8b. Primaries SIGKILLed mid-seed (Redis three times, then Postgres): voting resumes within 5 s, every acked vote arrives"
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
}

ha_down() {
    step "8c. docker-compose.ha.yml: down -v"
    run_quiet "compose -f docker-compose.ha.yml down -v" ha_compose --profile seed down -v --remove-orphans
    [ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$HA_PROJECT")" ] || die "containers left"
    [ -z "$(docker volume ls -q --filter "label=com.docker.compose.project=$HA_PROJECT")" ] || die "volumes left"
    pass
}
