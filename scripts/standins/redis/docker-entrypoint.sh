#!/bin/sh
# Entrypoint of the redis:7-alpine stand-in, after the official image's.
set -e

# first arg is `-f` or `--some-option`, or a .conf file: run redis-server
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# drop root: fix ownership of /data, then re-run as the redis user
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	HOME=/data exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

# The official image compiles redis with protected-mode off by default (it sits
# behind Docker's networking), so with no password it still accepts clients
# from other containers. Debian's build defaults to on: turn it off unless a
# given config file sets it; later command-line options still override it.
if [ "$1" = 'redis-server' ]; then
	shift
	if [ $# -gt 0 ] && { [ "${1#-}" = "$1" ] || [ "$1" = '-' ]; }; then
		conf=$1
		shift
		if [ -f "$conf" ] && grep -Eqi '^[[:space:]]*protected-mode[[:space:]]' "$conf"; then
			set -- redis-server "$conf" "$@"
		else
			set -- redis-server "$conf" --protected-mode no "$@"
		fi
	else
		set -- redis-server --protected-mode no "$@"
	fi
fi

um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
