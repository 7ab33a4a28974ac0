#!/usr/bin/env bash
# Offline proof that the containers work, as a user runs them: no registry,
# real compose and stack files. What CI runs (as root) after the tests.
#
# This file is the driver: the settings, the order of the steps and the
# clean-up. Each step is a file in scripts/proof/ whose opening comment says
# what it proves; scripts/proof/lib.sh holds what they share (reporting,
# waiting, HTTP, the compose commands).
#
#   1-engine.sh       1. the Docker engine, installed and started when absent
#   2-static.sh       2. compose files, Dockerfiles, k8s/ checked without running
#   3-base-images.sh  3. base images: stand-ins where the official ones are absent
#   4-build.sh        4. every image built: under 40 MB, non-root, a healthcheck
#   5-compose.sh      5. docker-compose.yml: votes, seed, store faults, networks;
#                        then the same file with Compose v2
#   5m-monitoring.sh  5m. --profile monitoring: Prometheus scrapes every target;
#                        a stopped worker raises the backlog alert, which
#                        resolves when it is back
#   6-hits.sh         6. hits/docker-compose.yml: the count survives its Redis
#   7-swarm.sh        7. docker-stack.yml on a single-node Swarm
#   8-ha.sh           8. docker-compose.ha.yml: the primaries killed mid-seed
#   9-cleanup.sh      9. clean-up, also on failure, and a summary with each
#                        step's time
#
# Traffic goes to ports published on 127.0.0.1 and, for the network checks,
# from throwaway containers on the compose networks: never to container IPs.
#
# Environment:
#   PROOF_COMPOSE     compose command (default: `docker-compose`; `docker compose`
#                     works too). Every available one also parses the files.
#   PROOF_PROJECT     compose project / stack name prefix (default votingproof)
#   PROOF_SKIP        space-separated step ids to skip: static compose monitoring
#                     hits swarm ha
#   PROOF_TOOLS_VENV  virtualenv for the tools from PyPI (validators, Compose v2)
#                     (default /var/cache/voting-proof/venv)
#   PROOF_SWARM_MESH  1/0: force the Swarm routing mesh on/off (default: on
#                     when the kernel has IPVS)
#   PROOF_KEEP_IMAGES=0  also remove the voting-app/* images at the end
#
# The whole driver is one { } block, which bash reads entirely before
# running it, and it sources every file of scripts/proof/ before the first
# step (`source` reads a file whole; those files only define functions), so
# editing or checking out any of them mid-run cannot change the run.
# shellcheck source-path=SCRIPTDIR/..
{
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

# The caller's python3 (e.g. a pyenv one, with venv support), found before
# Debian's /usr/bin goes first in PATH below.
PYTHON="$(command -v python3 || echo /usr/bin/python3)"
# Debian's docker client first: /usr/local/bin/docker on these machines has
# no buildx, and BuildKit builds fail with it.
export PATH="/usr/bin:/usr/sbin:/bin:/sbin:$PATH"
export DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1
# the defaults of the compose files, so the checks below know them
unset POSTGRES_USER POSTGRES_PASSWORD OPTION_A OPTION_B VOTE_PORT RESULT_PORT DB_PORT REDIS_PORT

PROJECT="${PROOF_PROJECT:-votingproof}"
HITS_PROJECT="${PROJECT}hits"
HA_PROJECT="${PROJECT}ha"
STACK="${PROJECT}stack"
SKIP=" ${PROOF_SKIP:-} "
VENV="${PROOF_TOOLS_VENV:-/var/cache/voting-proof/venv}"
read -r -a COMPOSE <<<"${PROOF_COMPOSE:-docker-compose}"
IMAGES=(voting-app/vote:latest voting-app/result:latest voting-app/worker:latest voting-app/seed:latest)
PROBE_IMAGE=debian:bookworm-slim # has bash: /dev/tcp probes on the compose networks

source scripts/proof/lib.sh
source scripts/proof/1-engine.sh
source scripts/proof/2-static.sh
source scripts/proof/3-base-images.sh
source scripts/proof/4-build.sh
source scripts/proof/5-compose.sh
source scripts/proof/5m-monitoring.sh
source scripts/proof/6-hits.sh
source scripts/proof/7-swarm.sh
source scripts/proof/8-ha.sh
source scripts/proof/9-cleanup.sh

# The run's state: the step under way, each finished step's line of the
# summary, a scratch folder; what step 7 created, for the clean-up.
TOTAL_START=$SECONDS
STEP=""
STEP_START=0
SUMMARY=()
WORK="$(mktemp -d /tmp/docker-proof.XXXXXX)"
SWARM_CREATED=0
GWBRIDGE_EXISTED=1
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" = 0 ] || die "run as root (it may install and start the Docker engine)"

proof_engine
if skipping static; then skipped "2. Static checks"; else proof_static; fi
proof_base_images
proof_build
if skipping compose; then skipped "5. docker-compose.yml"; else proof_compose; fi
if skipping monitoring; then skipped "5m. --profile monitoring"; else proof_monitoring; fi
if skipping hits; then skipped "6. hits/docker-compose.yml"; else proof_hits; fi
if skipping swarm; then skipped "7. docker-stack.yml on Swarm"; else proof_swarm; fi
if skipping ha; then skipped "8. docker-compose.ha.yml"; else proof_ha; fi

printf '\nThe containers work: image, compose, monitoring, hits, swarm and HA proofs passed.\n'
exit 0
}
