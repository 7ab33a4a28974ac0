# shellcheck shell=bash
# Step 7 proves docker-stack.yml runs on a single-node Swarm: 3 vote, 2
# worker and 2 result replicas and the stores, all healthy; votes through
# the published ports reach every result replica's page and live feed;
# `stack rm` leaves nothing. Where the kernel has no IPVS, as on CI's VMs,
# vote and result run with endpoint_mode dnsrr and host-mode ports, the
# only change to the file.

# what the step waits for: the stack's tasks, ports and pages, its removal
replicas() {
    docker service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Name}}={{.Replicas}}' \
        | sed "s/^${STACK}_//" | sort | tr '\n' ' '
}
replicas_ok() { [ "$(replicas)" = "$want" ]; }
task_containers() { docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$1"; }
healthy_tasks() {
    [ "$(docker ps -q --filter "label=com.docker.stack.namespace=$STACK" --filter health=healthy | wc -l)" -eq 9 ]
}
host_port() { docker port "$1" 80/tcp | sed -n '1s/.*://p'; }
http_ok() { curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$1/"; }
result_shows_three() { curl -fsS --max-time 5 "http://127.0.0.1:$1/" | grep -q '3 votes<'; }
stack_gone() { [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ]; }
networks_gone() { [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK")" ]; }

# stack_without_mesh SRC DST: the stack file SRC as DST (JSON) for a kernel
# without IPVS, changed as proof_swarm says below.
stack_without_mesh() {
    "$VENV/bin/python" - "$1" "$2" <<'PY'
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
}

proof_swarm() {
    local mesh stack_file want vote_ports result_ports c p i choice port page id feed
    local -A seen=()
    step "7. docker-stack.yml on a single-node Swarm"
    # SWARM_CREATED and GWBRIDGE_EXISTED tell the clean-up what to remove
    # shellcheck disable=SC2034
    docker network inspect docker_gwbridge >/dev/null 2>&1 || GWBRIDGE_EXISTED=0
    if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
        # loopback only: this node talks to nobody
        run_quiet "docker swarm init" docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377
        # shellcheck disable=SC2034
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
        stack_without_mesh "$ROOT/docker-stack.yml" "$stack_file"
        log "no IPVS in this kernel (no routing mesh, no virtual IPs): vote and result"
        log "deployed with endpoint_mode dnsrr and host-mode ports, one per task"
    fi
    # images are local: no registry lookup
    run "docker stack deploy" docker stack deploy --resolve-image never -c "$stack_file" "$STACK"
    want="db=1/1 redis=1/1 result=2/2 vote=3/3 worker=2/2 "
    wait_until 240 "replicas running: $want" replicas_ok
    wait_until 120 "all 9 containers healthy" healthy_tasks
    # the published port(s) of vote and result on the host
    if [ "$mesh" = 1 ]; then
        vote_ports=(5000 5000 5000)
        result_ports=(5001 5001)
    else
        vote_ports=()
        for c in $(task_containers vote); do vote_ports+=("$(host_port "$c")"); done
        result_ports=()
        for c in $(task_containers result); do result_ports+=("$(host_port "$c")"); done
        ((${#vote_ports[@]} == 3 && ${#result_ports[@]} == 2)) \
            || die "published ports: vote '${vote_ports[*]}', result '${result_ports[*]}'"
        log "published in host mode: vote on ${vote_ports[*]}, result on ${result_ports[*]}"
    fi
    for p in $(printf '%s\n' "${vote_ports[@]}" "${result_ports[@]}" | sort -u); do
        wait_until 60 "answering on 127.0.0.1:$p" http_ok "$p"
    done
    # Three voters (a, b, a) through the published port(s): without the mesh,
    # one per vote replica; with it, wherever the mesh sends them.
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
    for p in $(printf '%s\n' "${result_ports[@]}" | sort -u); do
        wait_until 60 "the result page on :$p shows 3 votes" result_shows_three "$p"
        feed="$(ws_tally --url "ws://127.0.0.1:$p/ws" --expect 2,1 --timeout 15)" || die "the live feed on :$p did not show a=2 b=1"
        log "WebSocket on :$p: ${feed##*$'\n'}"
    done
    run_quiet "docker stack rm" docker stack rm "$STACK"
    wait_until 90 "stack removed" stack_gone
    wait_until 60 "stack networks removed" networks_gone
    docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker volume rm >/dev/null
    pass
}
