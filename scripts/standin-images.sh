#!/usr/bin/env bash
# Build local stand-ins for the official base images this repo's Dockerfiles
# and compose files use, for machines that cannot pull from Docker Hub:
#
#   debian:bookworm-slim   debootstrap --variant=minbase rootfs, `docker import`ed
#   rust:<X.Y>-bookworm    the stand-in debian + gcc/libc6-dev/pkg-config + the
#                          host's Rust toolchain under /usr/local/{rustup,cargo}
#                          (also tagged rust:<X.Y.Z>-bookworm and rust:<X.Y>)
#   redis:7-alpine         the stand-in debian + Debian's redis-server 7.0
#   postgres:15-alpine     the stand-in debian + Debian's postgresql-15
#   postgres:15            the stand-in debian + Debian's postgresql-15 (the
#                          base of ha/patroni/Dockerfile)
#   quay.io/coreos/etcd:v3.5.17
#                          the stand-in debian + Debian's etcd-server/-client
#   haproxy:2.8            the stand-in debian + Debian's haproxy
#   prom/prometheus:v2.53.4
#                          the stand-in debian + Debian's prometheus 2.42 (the
#                          compose files' `monitoring` profile)
#                          (these four: Dockerfiles in scripts/standins/)
#   gcr.io/distroless/cc-debian12:nonroot
#                          FROM scratch + the files of Debian's libc6, libgcc-s1,
#                          libgomp1, libstdc++6, libssl3, netbase, tzdata and
#                          the CA bundle, distroless' passwd/group (user
#                          nonroot 65532), no shell (the runtime of our images)
#
# The stand-ins' Dockerfiles (and entrypoints) are in scripts/standins/<name>/;
# each is built FROM the stand-in debian (build argument BASE).
#
# Idempotent: an image is built only when `docker image inspect NAME` fails, so
# real images, when present, are used as they are. Installs docker.io,
# docker-compose and debootstrap when missing and starts dockerd when no engine
# answers. The slimmed debootstrap rootfs is cached in $STANDIN_CACHE_DIR
# (default /var/cache/voting-standins), so a rerun after `docker rmi` is fast.
#
# Usage: scripts/standin-images.sh [--rebuild | --engine-only]
#   --rebuild   first remove the stand-ins this script built (the names above
#               carrying label org.voting-app.standin=true; real images are
#               never touched) and build them again from the cached rootfs
#               (delete the cache dir as well for a fresh debootstrap).
#   --engine-only only install the host packages and start dockerd if no
#               engine answers; build nothing.
# Environment: STANDIN_CACHE_DIR, DEBIAN_MIRROR (default http://deb.debian.org/debian),
#   DEBIAN_SECURITY_MIRROR, DOCKERD_LOG (default /var/log/dockerd-standins.log).
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'standin-images: error: %s\n' "$*" >&2; exit 1; }

REBUILD=0
ENGINE_ONLY=0
for arg in "$@"; do
    case "$arg" in
        --rebuild) REBUILD=1 ;;
        --engine-only) ENGINE_ONLY=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $arg (try --help)" ;;
    esac
done

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, apt-get and dockerd need it)"

STANDINS="$(cd "$(dirname "$0")" && pwd)/standins"
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
CACHE_DIR="${STANDIN_CACHE_DIR:-/var/cache/voting-standins}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd-standins.log}"
HOST_CA=/etc/ssl/certs/ca-certificates.crt
LABEL=org.voting-app.standin
DEBIAN_IMAGE=debian:bookworm-slim
REDIS_IMAGE=redis:7-alpine
POSTGRES_IMAGE=postgres:15-alpine
DISTROLESS_IMAGE=gcr.io/distroless/cc-debian12:nonroot
# the HA compose variant's (docker-compose.ha.yml) and the monitoring profile's:
# stand-ins from scripts/standins/<dir>
STANDINS_DIR="$(cd "$(dirname "$0")" && pwd)/standins"
FILE_STANDINS=("postgres:15=postgres-15" "quay.io/coreos/etcd:v3.5.17=etcd" "haproxy:2.8=haproxy" "prom/prometheus:v2.53.4=prometheus")

# --- Rust toolchain of the host: resolved with the caller's PATH, before /usr/bin
# goes first below (a Debian rustc in /usr/bin must not shadow rustup's).
RUSTC="$(command -v rustc || true)"
[ -n "$RUSTC" ] || for c in "${CARGO_HOME:-$HOME/.cargo}/bin/rustc" /root/.cargo/bin/rustc; do
    if [ -x "$c" ]; then RUSTC="$c"; break; fi
done
[ -n "$RUSTC" ] || die "no rustc found on the host (needed for the rust image)"
RUST_VERSION="$("$RUSTC" --version | awk '{print $2}')"          # e.g. 1.95.0
RUST_MINOR="${RUST_VERSION%.*}"                                   # e.g. 1.95
RUST_HOST="$("$RUSTC" -vV | sed -n 's/^host: //p')"              # e.g. x86_64-unknown-linux-gnu
RUST_SYSROOT="$("$RUSTC" --print sysroot)"
RUST_SYSROOT="$(readlink -f "$RUST_SYSROOT")"
RUSTUP_BIN="$(dirname "$RUSTC")/rustup"
[ -x "$RUSTUP_BIN" ] || RUSTUP_BIN="$(command -v rustup || true)"
RUST_IMAGE="rust:${RUST_MINOR}-bookworm"
RUST_ALIASES=("rust:${RUST_VERSION}-bookworm" "rust:${RUST_MINOR}")

# Debian's docker client first: /usr/local/bin/docker on these machines is a
# newer client without buildx, with which BuildKit builds fail.
export PATH="/usr/bin:/usr/sbin:/bin:/sbin:$PATH"
export DOCKER_BUILDKIT=0   # the stand-ins use the legacy builder (no buildx needed)

mkdir -p "$CACHE_DIR"
WORK="$(mktemp -d "$CACHE_DIR/work.XXXXXX")"
ROOTFS_DIR=""
cleanup() {
    if [ -n "$ROOTFS_DIR" ] && [ -d "$ROOTFS_DIR" ]; then
        for m in dev/pts dev sys proc; do
            if mountpoint -q "$ROOTFS_DIR/$m" 2>/dev/null; then umount -l "$ROOTFS_DIR/$m" || true; fi
        done
        rm -rf --one-file-system "$ROOTFS_DIR"
    fi
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- host tools
ensure_host_tools() {
    local missing=()
    [ -x /usr/bin/docker ] || missing+=(docker.io)
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
    if [ "${#missing[@]}" -gt 0 ]; then
        command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
        log "installing host packages: docker.io docker-compose debootstrap debian-archive-keyring"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            docker.io docker-compose debootstrap debian-archive-keyring >/dev/null
    fi
}

ensure_engine() {
    if docker info >/dev/null 2>&1; then
        log "docker engine answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"
        return
    fi
    log "no docker engine answers: starting dockerd in the background (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    nohup setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    local pid=$! i
    for i in $(seq 1 60); do
        if docker info >/dev/null 2>&1; then
            log "dockerd is up after ${i}s"
            return
        fi
        if ! kill -0 "$pid" 2>/dev/null && ! pgrep -x dockerd >/dev/null; then
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "dockerd exited during start-up (see $DOCKERD_LOG)"
        fi
        sleep 1
    done
    tail -n 30 "$DOCKERD_LOG" >&2 || true
    die "dockerd did not answer within 60s (see $DOCKERD_LOG)"
}

# --------------------------------------------------------- debian:bookworm-slim
ARCH="$(dpkg --print-architecture 2>/dev/null || true)"
if [ -z "$ARCH" ]; then
    case "$(uname -m)" in
        x86_64) ARCH=amd64 ;; aarch64) ARCH=arm64 ;; *) die "unsupported arch $(uname -m)" ;;
    esac
fi
ROOTFS_TAR="$CACHE_DIR/rootfs-$SUITE-minbase-$ARCH.tar"

# Slim the rootfs like debuerreotype does for the official -slim images.
write_minimizing_config() {
    local r=$1
    mkdir -p "$r/etc/dpkg/dpkg.cfg.d" "$r/etc/apt/apt.conf.d" "$r/etc/apt/sources.list.d"
    cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# This is the "slim" variant of the Debian base image.
# Many files which are normally unnecessary in containers are excluded,
# and this configuration file keeps them that way.

path-exclude /usr/share/doc/*
# we need to keep copyright files for legal reasons
path-include /usr/share/doc/*/copyright

path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
    echo 'force-unsafe-io' >"$r/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$r/etc/apt/apt.conf.d/docker-autoremove-suggests"
    echo 'Acquire::GzipIndexes "true";' >"$r/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
    # no service start-ups when packages are installed in a build
    printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"
    rm -f "$r/etc/apt/sources.list"
    cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

make_rootfs() {
    ROOTFS_DIR="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
    local r="$ROOTFS_DIR"
    log "debootstrap --variant=minbase $SUITE ($ARCH) from $MIRROR (takes a few minutes)"
    debootstrap --variant=minbase --arch="$ARCH" \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        "$SUITE" "$r" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 \
        || { tail -n 30 "$CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed (see $CACHE_DIR/debootstrap.log)"; }
    write_minimizing_config "$r"

    log "applying $SUITE-updates/-security updates inside the rootfs"
    cp /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
    mount -t proc proc "$r/proc"
    (
        export DEBIAN_FRONTEND=noninteractive LC_ALL=C
        chroot "$r" apt-get update -qq
        chroot "$r" apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade
        chroot "$r" apt-get clean
    ) >"$CACHE_DIR/rootfs-upgrade.log" 2>&1 \
        || { umount -l "$r/proc"; tail -n 30 "$CACHE_DIR/rootfs-upgrade.log" >&2; die "apt upgrade in rootfs failed"; }
    umount "$r/proc"

    log "slimming the rootfs"
    # what the dpkg excludes would have kept out had they been there from the start
    find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$r"/usr/share/{groff,info,linda,locale,man}/* "$r"/usr/share/lintian/overrides/*
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old \
        "$r"/var/lib/dpkg/*-old "$r"/tmp/* "$r"/var/tmp/*
    find "$r/var/log" -type f -exec truncate -s 0 {} +
    rm -f "$r"/var/log/{bootstrap.log,alternatives.log,dpkg.log} "$r"/var/log/apt/*.log
    : >"$r/etc/resolv.conf"           # docker mounts its own
    echo localhost >"$r/etc/hostname"
    : >"$r/etc/machine-id"

    log "caching rootfs as $ROOTFS_TAR"
    tar --numeric-owner --xattrs -C "$r" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -cf "$ROOTFS_TAR.tmp" .
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf --one-file-system "$r"
    ROOTFS_DIR=""
}

# The host bundle may hold CAs that are not Mozilla's (e.g. a TLS-intercepting
# egress proxy). Installing/updating the ca-certificates package inside an image
# regenerates /etc/ssl/certs/ca-certificates.crt from Mozilla's list plus
# /usr/local/share/ca-certificates/*.crt, so put those extra CAs there too.
write_extra_cas() {
    local bundle=$1 outdir=$2 known n=0 f fp
    command -v openssl >/dev/null 2>&1 || { log "no openssl on host: not splitting out extra CAs"; return 0; }
    [ -d /usr/share/ca-certificates ] || return 0
    known="$WORK/known-fingerprints"
    find /usr/share/ca-certificates -name '*.crt' -print0 \
        | xargs -0 -r -n1 openssl x509 -noout -fingerprint -sha256 -in 2>/dev/null | sort -u >"$known"
    mkdir -p "$WORK/split"
    awk -v d="$WORK/split" '/-----BEGIN CERTIFICATE-----/{n++; f=sprintf("%s/%04d.pem", d, n)} n{print > f} /-----END CERTIFICATE-----/{close(f)}' "$bundle"
    for f in "$WORK"/split/*.pem; do
        [ -e "$f" ] || continue
        fp="$(openssl x509 -noout -fingerprint -sha256 -in "$f" 2>/dev/null)" || continue
        if ! grep -qxF "$fp" "$known"; then
            n=$((n + 1))
            cp "$f" "$outdir/host-extra-ca-$(printf '%02d' "$n").crt"
        fi
    done
    log "host CA bundle: $n CA(s) beyond Mozilla's kept in /usr/local/share/ca-certificates"
}

build_debian() {
    if [ -s "$ROOTFS_TAR" ]; then
        log "using cached rootfs $ROOTFS_TAR"
    else
        make_rootfs
    fi
    [ -s "$HOST_CA" ] || die "host CA bundle $HOST_CA missing"
    local w="$WORK/debian" add
    add="$w/add"
    mkdir -p "$add/etc/ssl/certs" "$add/usr/local/share/ca-certificates"
    cp "$HOST_CA" "$add/etc/ssl/certs/ca-certificates.crt"
    write_extra_cas "$HOST_CA" "$add/usr/local/share/ca-certificates"
    chmod 755 "$add/etc/ssl" "$add/etc/ssl/certs" "$add/usr/local/share/ca-certificates"
    find "$add" -type f -exec chmod 644 {} +
    cp "$ROOTFS_TAR" "$w/rootfs.tar"
    (cd "$add" && { echo ./etc/ssl; echo ./etc/ssl/certs; find ./etc/ssl/certs ./usr/local/share/ca-certificates -mindepth 0; }) \
        | sort -u >"$w/list"
    tar -rf "$w/rootfs.tar" -C "$add" --owner=0 --group=0 --numeric-owner --no-recursion -T "$w/list"
    log "importing $DEBIAN_IMAGE"
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --change "LABEL $LABEL=true" \
        --message "stand-in for $DEBIAN_IMAGE: debootstrap --variant=minbase $SUITE" \
        "$w/rootfs.tar" "$DEBIAN_IMAGE" >/dev/null
    docker run --rm "$DEBIAN_IMAGE" bash -c 'cat /etc/debian_version' >/dev/null \
        || die "the imported $DEBIAN_IMAGE does not run"
}

# ------------------------------------------------------------- rust:X.Y-bookworm
build_rust() {
    if [ ! -x "$RUST_SYSROOT/bin/rustc" ] || [ ! -d "$RUST_SYSROOT/lib/rustlib" ]; then
        die "rustc sysroot $RUST_SYSROOT is not a rustup-style toolchain"
    fi
    [ "$RUST_SYSROOT" != /usr ] || die "host rustc is a distro package; install a rustup toolchain"
    local ctx="$WORK/rust" tc="${RUST_VERSION}-${RUST_HOST}"
    log "staging the host's Rust $RUST_VERSION ($RUST_SYSROOT) as toolchain $tc"
    mkdir -p "$ctx/rustup/toolchains/$tc" "$ctx/cargo/bin"
    # docs are 800 MB and not in the official image
    tar -C "$RUST_SYSROOT" --exclude=./share/doc -cf - . | tar -C "$ctx/rustup/toolchains/$tc" -xf -
    sed -i '/^rust-docs-/d' "$ctx/rustup/toolchains/$tc/lib/rustlib/components"
    rm -f "$ctx/rustup/toolchains/$tc/lib/rustlib/manifest-rust-docs-"*
    ln -s "$tc" "$ctx/rustup/toolchains/stable-$RUST_HOST"
    cat >"$ctx/rustup/settings.toml" <<EOF
version = "12"
default_toolchain = "$tc"
profile = "minimal"
auto_self_update = "disable"

[overrides]
EOF
    if [ -n "$RUSTUP_BIN" ] && [ -x "$RUSTUP_BIN" ]; then
        # like the official image: rustup itself plus its proxies
        cp "$RUSTUP_BIN" "$ctx/cargo/bin/rustup"
        local p
        for p in cargo cargo-clippy cargo-fmt clippy-driver rustc rustdoc rustfmt rust-gdb rust-gdbgui rust-lldb; do
            [ -e "$ctx/rustup/toolchains/$tc/bin/$p" ] && ln -s rustup "$ctx/cargo/bin/$p"
        done
    else
        log "no rustup on the host: linking the toolchain's binaries into CARGO_HOME/bin"
        local b
        for b in "$ctx/rustup/toolchains/$tc/bin/"*; do
            ln -s "/usr/local/rustup/toolchains/$tc/bin/$(basename "$b")" "$ctx/cargo/bin/$(basename "$b")"
        done
    fi
    [ -e "$ctx/cargo/bin/cargo" ] || die "no cargo in the toolchain $RUST_SYSROOT"
    chmod -R a+w "$ctx/rustup" "$ctx/cargo"
    cp "$STANDINS/rust/Dockerfile" "$ctx/Dockerfile"
    log "building $RUST_IMAGE"
    docker build --pull=false --build-arg BASE="$DEBIAN_IMAGE" \
        --build-arg RUST_VERSION="$RUST_VERSION" -t "$RUST_IMAGE" "$ctx"
}

# ---------------------------------------------------------------- redis:7-alpine
build_redis() {
    local ctx="$WORK/redis"
    mkdir -p "$ctx"
    cp "$STANDINS/redis/docker-entrypoint.sh" "$ctx/docker-entrypoint.sh"
    chmod 755 "$ctx/docker-entrypoint.sh"
    cp "$STANDINS/redis/Dockerfile" "$ctx/Dockerfile"
    log "building $REDIS_IMAGE"
    docker build --pull=false --build-arg BASE="$DEBIAN_IMAGE" -t "$REDIS_IMAGE" "$ctx"
}

# ------------------------------------------------------------ postgres:15-alpine
build_postgres() {
    local ctx="$WORK/postgres"
    mkdir -p "$ctx"
    cp "$STANDINS/postgres/docker-entrypoint.sh" "$ctx/docker-entrypoint.sh"
    chmod 755 "$ctx/docker-entrypoint.sh"
    cp "$STANDINS/postgres/Dockerfile" "$ctx/Dockerfile"
    log "building $POSTGRES_IMAGE"
    docker build --pull=false --build-arg BASE="$DEBIAN_IMAGE" -t "$POSTGRES_IMAGE" "$ctx"
}

# ------------------------------------------- gcr.io/distroless/cc-debian12:nonroot
# What distroless' cc-debian12 holds (static: CA certs, tzdata, netbase,
# passwd/group, /tmp; base: + glibc, libssl3; cc: + libgcc, libgomp,
# libstdc++), gathered from the stand-in debian's packages into a scratch
# image: no shell, no package manager, user nonroot (65532) by default.
build_distroless() {
    local ctx="$WORK/distroless"
    mkdir -p "$ctx"
    cp "$STANDINS/distroless/Dockerfile" "$ctx/Dockerfile"
    log "building $DISTROLESS_IMAGE"
    docker build --pull=false --build-arg BASE="$DEBIAN_IMAGE" -t "$DISTROLESS_IMAGE" "$ctx"
    # No shell inside: glibc's libc.so.6 is itself runnable (it prints its
    # version), which proves the loader and the library are in place.
    local multiarch
    case "$ARCH" in
        amd64) multiarch=x86_64-linux-gnu ;; arm64) multiarch=aarch64-linux-gnu ;;
        *) multiarch="$(uname -m)-linux-gnu" ;;
    esac
    docker run --rm --entrypoint "/usr/lib/$multiarch/libc.so.6" "$DISTROLESS_IMAGE" >/dev/null \
        || die "the built $DISTROLESS_IMAGE cannot run glibc"
}

# ------------------------------------ stand-ins with a Dockerfile of their own
# build_from_dir IMAGE DIR: scripts/standins/DIR/Dockerfile on the stand-in debian
build_from_dir() {
    log "building $1"
    docker build --pull=false --build-arg "BASE=$DEBIAN_IMAGE" -t "$1" "$STANDINS_DIR/$2"
}

# ------------------------------------------------------------------------ main
start=$SECONDS
ensure_host_tools
ensure_engine
if [ "$ENGINE_ONLY" = 1 ]; then
    log "engine ready in $((SECONDS - start))s (--engine-only: no images built)"
    exit 0
fi

if [ "$REBUILD" = 1 ]; then
    # Only our names, only when they carry our label (images built FROM a
    # stand-in inherit the label, so the label alone would catch app images).
    # Derived images first; untagging leaves images that others use intact.
    for name in "${FILE_STANDINS[@]%%=*}" "$DISTROLESS_IMAGE" "$POSTGRES_IMAGE" "$REDIS_IMAGE" "${RUST_ALIASES[@]}" "$RUST_IMAGE" "$DEBIAN_IMAGE"; do
        if [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$name" 2>/dev/null)" = true ]; then
            log "--rebuild: removing stand-in $name"
            docker rmi "$name" >/dev/null
        fi
    done
fi

if have_image "$DEBIAN_IMAGE"; then log "$DEBIAN_IMAGE present: kept"; else build_debian; fi
if have_image "$RUST_IMAGE"; then log "$RUST_IMAGE present: kept"; else build_rust; fi
for alias in "${RUST_ALIASES[@]}"; do
    if ! have_image "$alias"; then docker tag "$RUST_IMAGE" "$alias"; log "tagged $alias"; fi
done
if have_image "$REDIS_IMAGE"; then log "$REDIS_IMAGE present: kept"; else build_redis; fi
if have_image "$POSTGRES_IMAGE"; then log "$POSTGRES_IMAGE present: kept"; else build_postgres; fi
if have_image "$DISTROLESS_IMAGE"; then log "$DISTROLESS_IMAGE present: kept"; else build_distroless; fi
for entry in "${FILE_STANDINS[@]}"; do
    name="${entry%%=*}"
    if have_image "$name"; then log "$name present: kept"; else build_from_dir "$name" "${entry#*=}"; fi
done

log "done in $((SECONDS - start))s:"
docker images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' \
    | grep -E "^($DEBIAN_IMAGE|rust:$RUST_MINOR|$REDIS_IMAGE|$POSTGRES_IMAGE|${DISTROLESS_IMAGE%:*}|postgres:15 |quay.io/coreos/etcd|haproxy:|prom/prometheus:)" | sed 's/^/    /' >&2 || true
