#!/bin/sh
# Healthcheck for the Redis container: healthy (exit 0) when the server on
# 127.0.0.1:${REDIS_PORT:-6379} answers `redis-cli ping` with PONG; a server
# still loading its AOF/RDB answers LOADING and counts as unhealthy (exit 1).
# Uses REDIS_PASSWORD, when set, through REDISCLI_AUTH (not on the command line).
# POSIX sh: runs under busybox sh in redis:7-alpine.
set -u

if [ -n "${REDIS_PASSWORD:-}" ]; then
	REDISCLI_AUTH="$REDIS_PASSWORD"
	export REDISCLI_AUTH
fi

reply="$(redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" ping 2>&1)" || {
	echo "redis: ping failed: $reply" >&2
	exit 1
}
if [ "$reply" != "PONG" ]; then
	echo "redis: unexpected reply to ping: $reply" >&2
	exit 1
fi
exit 0
