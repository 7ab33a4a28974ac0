# shellcheck shell=bash
# Step 4 proves every image builds with BuildKit (shared cache mounts) and
# is fit to ship: each under 40 MB, running as a user other than root, with
# a HEALTHCHECK that runs its own `healthcheck` subcommand (the seed, a
# one-shot job: none).

proof_build() {
    local MAX_IMAGE_BYTES=$((40 * 1000 * 1000)) img size user health
    step "4. Build the images (BuildKit, shared cache mounts)"
    run_quiet "compose build" compose_seed build
    grep -E '^Building |Finished .release' "$WORK/out.log" | sed 's/^#[0-9]* [0-9.]* */  /; s/^/    /' || true
    for img in "${IMAGES[@]}"; do
        size="$(docker image inspect -f '{{.Size}}' "$img")" || die "$img was not built"
        user="$(docker image inspect -f '{{.Config.User}}' "$img")"
        health="$(docker image inspect -f '{{if .Config.Healthcheck}}{{join .Config.Healthcheck.Test " "}}{{end}}' "$img")"
        log "$(printf '%-26s %s MB  user %-12s healthcheck: %s' "$img" "$(awk -v s="$size" 'BEGIN { printf "%5.1f", s / 1e6 }')" "$user" "${health:-none}")"
        ((size < MAX_IMAGE_BYTES)) || die "$img is $size bytes: over 40 MB"
        case "$user" in "" | 0 | 0:* | root | root:*) die "$img runs as root" ;; esac
        case "$img" in
            */seed:*) [ "$health" = NONE ] || [ -z "$health" ] || die "the seed (a one-shot job) has a healthcheck" ;;
            *) [[ "$health" == *" healthcheck" ]] || die "$img has no HEALTHCHECK using its healthcheck subcommand" ;;
        esac
    done
    pass
}
