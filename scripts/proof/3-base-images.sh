# shellcheck shell=bash
# Step 3 proves every base image the Dockerfiles and compose files name is
# on the machine, though no registry is reachable: scripts/standin-images.sh
# builds stand-ins under the official names where the real ones are absent.

proof_base_images() {
    local need f img
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
}
