# shellcheck shell=bash
# Step 2 proves the deployment files are well formed before anything runs
# them: the compose files against the compose-spec schema and through
# docker-compose 1.29's and Compose v2's own parsers, their networks,
# volumes, configs and dependencies defined; the Dockerfiles through
# hadolint; every file of k8s/ that kubectl reads against the Kubernetes
# 1.30 schemas; the monitoring rules' unit tests and both Prometheus
# configurations (compose's, the k8s ConfigMap's) through promtool.

proof_static() {
    local COMPOSE_FILES DOCKERFILES parsers parser p k8s_files
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
        run_quiet "$parser config (docker-compose.yml)" "${p[@]}" -f docker-compose.yml --profile seed --profile monitoring config -q
        run_quiet "$parser config (docker-compose.ha.yml)" "${p[@]}" -f docker-compose.ha.yml --profile seed --profile monitoring config -q
        run_quiet "$parser config (hits/docker-compose.yml)" "${p[@]}" -f hits/docker-compose.yml config -q
        log "$("${p[@]}" version 2>/dev/null | head -n1) accepts docker-compose.yml, docker-compose.ha.yml and hits/docker-compose.yml"
    done
    DOCKERFILES=(Dockerfile.vote Dockerfile.result Dockerfile.worker seed/Dockerfile hits/Dockerfile ha/patroni/Dockerfile scripts/standins/*/Dockerfile)
    run_quiet "hadolint" "$VENV/bin/hadolint" --failure-threshold warning "${DOCKERFILES[@]}"
    log "hadolint: ${DOCKERFILES[*]}: no warnings"
    # Every file `kubectl apply -f k8s/` reads (.yaml, .yml, .json) must be a
    # Kubernetes object.
    mapfile -t k8s_files < <(find k8s -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) | sort)
    run "kubernetes-validate" "$VENV/bin/kubernetes-validate" --strict -k 1.30.0 "${k8s_files[@]}"
    # The monitoring rules, and Prometheus's configurations with them:
    # compose's (monitoring/prometheus.yml) and the Kubernetes ConfigMap's.
    # Debian's promtool is built without Kubernetes discovery: the
    # ConfigMap's is checked as a copy with static targets in place of
    # `kubernetes_sd_configs`, so the rest (the relabelling above all) is
    # checked as written.
    command -v promtool >/dev/null || run_quiet "apt-get install prometheus (for promtool)" apt_install prometheus
    run "promtool test rules (monitoring/tests)" promtool test rules monitoring/tests/*.yml
    mkdir -p "$WORK/k8s-prometheus" "$WORK/compose-prometheus"
    "$VENV/bin/python" - k8s/prometheus-config.yaml "$WORK/k8s-prometheus" <<'PY' || die "could not unpack k8s/prometheus-config.yaml"
import sys, yaml
out = sys.argv[2]
for name, text in yaml.safe_load(open(sys.argv[1]))["data"].items():
    text = text.replace("/etc/prometheus/", out + "/")
    if name == "prometheus.yml":
        text = text.replace("kubernetes_sd_configs:", "static_configs:")
        text = text.replace("- role: pod", '- targets: ["vote:8081"]')
        text = text.replace("namespaces:", "labels:").replace("own_namespace: true", 'own_namespace: "true"')
    open(f"{out}/{name}", "w").write(text)
PY
    ! grep -q "^ *kubernetes_sd_configs:" "$WORK/k8s-prometheus/prometheus.yml" || die "could not swap the discovery block of k8s/prometheus-config.yaml"
    run "promtool check config (k8s/prometheus-config.yaml)" promtool check config "$WORK/k8s-prometheus/prometheus.yml"
    cp -r monitoring/rules "$WORK/compose-prometheus/"
    sed "s|/etc/prometheus/rules/|$WORK/compose-prometheus/rules/|" monitoring/prometheus.yml >"$WORK/compose-prometheus/prometheus.yml"
    run "promtool check config (monitoring/prometheus.yml)" promtool check config "$WORK/compose-prometheus/prometheus.yml"
    pass
}
