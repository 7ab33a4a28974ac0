# shellcheck shell=bash
# Step 2 proves the deployment files are well formed before anything runs
# them: the compose files against the compose-spec schema and through
# docker-compose 1.29's and Compose v2's own parsers, their networks,
# volumes, configs and dependencies defined; the Dockerfiles through
# hadolint; every file kubectl reads in k8s/ against the Kubernetes 1.30 schemas and its Prometheus
# scrape config through promtool.

proof_static() {
    local COMPOSE_FILES DOCKERFILES parsers parser p
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
    # Every file `kubectl apply -f k8s/` reads (.yaml, .yml and .json), so
    # a file there that is not a Kubernetes object fails here, as it would
    # fail the apply.
    local manifests f
    manifests=()
    for f in k8s/*.yaml k8s/*.yml k8s/*.json; do
        [ -e "$f" ] && manifests+=("$f")
    done
    run "kubernetes-validate" "$VENV/bin/kubernetes-validate" --strict -k 1.30.0 "${manifests[@]}"
    # Debian's promtool is built without Kubernetes discovery: check a copy
    # with static targets in place of `kubernetes_sd_configs`, so the rest of
    # the file (the relabelling above all) is checked as written.
    command -v promtool >/dev/null || run_quiet "apt-get install prometheus (for promtool)" apt_install prometheus
    sed -e 's/^\( *\)kubernetes_sd_configs:$/\1static_configs:/' \
        -e 's/^\( *\)- role: pod$/\1- targets: ["vote:8081"]/' k8s/prometheus.yml >"$WORK/prometheus.yml"
    ! grep -q "^ *kubernetes_sd_configs:" "$WORK/prometheus.yml" || die "could not swap the discovery block of k8s/prometheus.yml"
    run "promtool check config (k8s/prometheus.yml)" promtool check config "$WORK/prometheus.yml"
    pass
}
