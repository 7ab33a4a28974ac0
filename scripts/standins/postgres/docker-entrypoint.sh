#!/usr/bin/env bash
# Entrypoint of the postgres:15-alpine stand-in, after the official image's:
# POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required unless
# POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default $POSTGRES_USER),
# POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256).
# initdb runs only when $PGDATA holds no cluster; postgres then replaces this
# script (exec), so it is PID 1 and gets docker's stop signal directly.
# /docker-entrypoint-initdb.d is not supported.
set -Eeo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

# first arg is `-f` or `--some-option`: run postgres
if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi
if [ "$1" != 'postgres' ]; then
	exec "$@"
fi

if [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA"
	chmod 00700 "$PGDATA" || :
	find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
	mkdir -p /var/run/postgresql
	chown postgres:postgres /var/run/postgresql
	chmod 03775 /var/run/postgresql
	HOME=/var/lib/postgresql exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != 'trust' ]; then
		cat >&2 <<-'EOM'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
			       (or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password)
		EOM
		exit 1
	fi
	export POSTGRES_USER="${POSTGRES_USER:-postgres}"
	export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
	auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

	echo "initdb: new cluster in $PGDATA for user \"$POSTGRES_USER\""
	# --pwfile refuses an empty file, hence the "\n"
	eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "${POSTGRES_PASSWORD:-}") '"${POSTGRES_INITDB_ARGS:-}"
	# local socket and loopback stay "trust" (initdb's default, like the
	# official image); everything else needs the password
	printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

	# a socket-only server to create the database: nothing outside sees it
	# accept connections before initialisation is complete
	shift
	PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -w start \
		-o "$(printf '%q ' "$@" -c listen_addresses='' -p "${PGPORT:-5432}")"
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "$POSTGRES_USER" \
			--dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			SELECT format('CREATE DATABASE %I', :'db')
			WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
		EOSQL
	fi
	pg_ctl -D "$PGDATA" -m fast -w stop
	set -- postgres "$@"
	echo
	echo 'PostgreSQL init process complete; ready for start up.'
	echo
fi

exec "$@"
