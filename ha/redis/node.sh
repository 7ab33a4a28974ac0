#!/bin/sh
# Starts one Redis data node of docker-compose.ha.yml (redis:7-alpine).
#
# The node's configuration file lives in its volume (/data/redis.conf),
# because Sentinel rewrites it (CONFIG REWRITE) whenever it changes the
# node's role: a node that was a replica when it went down comes back as
# whatever Sentinel last made it, not as what compose said at the start.
# The file is therefore written only on the first start:
#   REDIS_ANNOUNCE_HOST  the node's host name on the network, announced to
#                        the primary and so to Sentinel and its clients
#   REDIS_REPLICA_OF     the host to replicate at first start (unset: start
#                        as the primary)
# The rest is on the command line, the same on every start: AOF fsynced
# every second; writes refused unless MIN_REPLICAS_TO_WRITE replicas
# acknowledged within MIN_REPLICAS_MAX_LAG seconds, so an isolated old
# primary cannot accept ballots that a failover would drop; and at most
# REDIS_MAXMEMORY (128mb) of data with `noeviction`, so a stalled worker
# fills the queue until the primary refuses ballots (vote answers its 503
# page) rather than growing without bound. Replicas ignore their own limit
# (replica-ignore-maxmemory) and follow the primary.
#
# A node that was the primary when it stopped (its file names no primary to
# replicate) waits PRIMARY_RESTART_DELAY seconds (10) before it starts:
# restarted by Docker at once after a crash, it would otherwise be back
# before Sentinel's down-after-milliseconds, still the primary, with an
# AOF up to a second behind what its replicas confirmed — and the replicas
# would resync to it and drop those ballots. After the delay, Sentinel has
# promoted a replica and turns this node into one.
set -eu

conf=/data/redis.conf
if [ ! -s "$conf" ]; then
	{
		echo "# Written at first start by node.sh; Sentinel rewrites it."
		echo "protected-mode no"
		echo "replica-announce-ip ${REDIS_ANNOUNCE_HOST:?REDIS_ANNOUNCE_HOST must be set}"
		if [ -n "${REDIS_REPLICA_OF:-}" ]; then
			echo "replicaof $REDIS_REPLICA_OF 6379"
		fi
	} >"$conf"
elif ! grep -q '^replicaof ' "$conf"; then
	delay="${PRIMARY_RESTART_DELAY:-10}"
	echo "node.sh: this node was the primary when it stopped: starting in ${delay}s, after Sentinel's failover" >&2
	sleep "$delay"
fi
# the image's entrypoint hands /data to the redis user and drops root
exec docker-entrypoint.sh redis-server "$conf" \
	--appendonly yes --appendfsync everysec \
	--maxmemory "${REDIS_MAXMEMORY:-128mb}" --maxmemory-policy noeviction \
	--repl-diskless-sync-delay 0 \
	--min-replicas-to-write "${MIN_REPLICAS_TO_WRITE:-1}" \
	--min-replicas-max-lag "${MIN_REPLICAS_MAX_LAG:-2}"
