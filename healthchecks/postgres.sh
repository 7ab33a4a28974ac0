#!/bin/sh
# Healthcheck for the Postgres container: healthy (exit 0) when the server
# accepts TCP connections on 127.0.0.1:${PGPORT:-5432} (pg_isready) AND runs a
# real query (`SELECT 1`) as $POSTGRES_USER (default postgres) on $POSTGRES_DB
# (default: the user name), with PGPASSWORD from POSTGRES_PASSWORD; else exit 1.
# TCP rather than the socket: during first-start initialisation the official
# entrypoint runs a socket-only server, which must not count as ready.
# POSIX sh: runs under busybox sh in postgres:15-alpine.
set -u

user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
port="${PGPORT:-5432}"
PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}"
export PGCONNECT_TIMEOUT
if [ -n "${POSTGRES_PASSWORD:-}" ]; then
	PGPASSWORD="$POSTGRES_PASSWORD"
	export PGPASSWORD
fi

if ! pg_isready -q -h 127.0.0.1 -p "$port" -U "$user" -d "$db"; then
	echo "postgres: not accepting connections on 127.0.0.1:$port" >&2
	exit 1
fi
out="$(psql -X -w -q -t -A -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$user" -d "$db" \
	-c 'SELECT 1' 2>&1)" || {
	echo "postgres: query failed: $out" >&2
	exit 1
}
if [ "$out" != "1" ]; then
	echo "postgres: unexpected answer to SELECT 1: $out" >&2
	exit 1
fi
exit 0
