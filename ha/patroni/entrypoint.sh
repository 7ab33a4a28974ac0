#!/bin/bash
# Entrypoint of voting-app/patroni: fills in the node's own settings from the
# environment, then runs the command (Patroni) as PID 1.
#
# Patroni reads PATRONI_* variables over patroni.yml. This script derives
# them from a few plainer ones:
#   PATRONI_NAME           the node's name and host name on the network
#                          (default: the container's host name)
#   PATRONI_ETCD3_HOSTS    etcd endpoints, host:port[,host:port…] (default:
#                          etcd:2379, from patroni.yml)
#   POSTGRES_PASSWORD      the superuser's (postgres) password: required
#   REPLICATION_PASSWORD   the replication user's (replicator) password:
#                          required, and the same on every node
# Other PATRONI_* variables pass through untouched.
set -euo pipefail

: "${PATRONI_NAME:=$(hostname)}"
: "${PATRONI_RESTAPI_CONNECT_ADDRESS:=${PATRONI_NAME}:8008}"
: "${PATRONI_POSTGRESQL_CONNECT_ADDRESS:=${PATRONI_NAME}:5432}"
: "${PATRONI_SUPERUSER_USERNAME:=postgres}"
: "${PATRONI_REPLICATION_USERNAME:=replicator}"
if [ -z "${POSTGRES_PASSWORD:-}" ] || [ -z "${REPLICATION_PASSWORD:-}" ]; then
	echo "patroni-entrypoint: set POSTGRES_PASSWORD and REPLICATION_PASSWORD" >&2
	exit 1
fi
PATRONI_SUPERUSER_PASSWORD="$POSTGRES_PASSWORD"
PATRONI_REPLICATION_PASSWORD="$REPLICATION_PASSWORD"
export PATRONI_NAME PATRONI_RESTAPI_CONNECT_ADDRESS \
	PATRONI_POSTGRESQL_CONNECT_ADDRESS PATRONI_SUPERUSER_USERNAME \
	PATRONI_SUPERUSER_PASSWORD PATRONI_REPLICATION_USERNAME PATRONI_REPLICATION_PASSWORD
unset POSTGRES_PASSWORD REPLICATION_PASSWORD

# Patroni creates the data directory itself (mode 0700) inside the volume.
exec "$@"
