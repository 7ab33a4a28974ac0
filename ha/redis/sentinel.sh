#!/bin/sh
# Starts one Redis Sentinel of docker-compose.ha.yml (redis:7-alpine).
#
# Sentinel needs a writable configuration file: it records there what it
# learns (the current primary, replicas, other Sentinels, the epoch). It
# lives in the Sentinel's volume and is written only on the first start:
#   SENTINEL_ANNOUNCE_HOST   this Sentinel's host name on the network
#   SENTINEL_MASTER          the name clients ask for (REDIS_SENTINEL_MASTER)
#   SENTINEL_PRIMARY         the data node that is the primary at first start
#   SENTINEL_QUORUM          Sentinels that must agree the primary is down (2)
#   SENTINEL_DOWN_AFTER_MS   silence before a Sentinel calls a node down
#                            (1500: with 1000, the loaded test machine saw
#                            failovers away from healthy new primaries)
#   SENTINEL_FAILOVER_TIMEOUT_MS  (3000)
# Host names, not addresses, everywhere (resolve-hostnames, announce-
# hostnames): a restarted container may come back with another address.
set -eu

conf=/data/sentinel.conf
master="${SENTINEL_MASTER:-voting}"
if [ ! -s "$conf" ]; then
	cat >"$conf" <<CONF
# Written at first start by sentinel.sh; Sentinel rewrites it.
port 26379
protected-mode no
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${SENTINEL_ANNOUNCE_HOST:?SENTINEL_ANNOUNCE_HOST must be set}
sentinel monitor $master ${SENTINEL_PRIMARY:?SENTINEL_PRIMARY must be set} 6379 ${SENTINEL_QUORUM:-2}
sentinel down-after-milliseconds $master ${SENTINEL_DOWN_AFTER_MS:-1500}
sentinel failover-timeout $master ${SENTINEL_FAILOVER_TIMEOUT_MS:-3000}
sentinel parallel-syncs $master 1
CONF
fi
exec docker-entrypoint.sh redis-server "$conf" --sentinel
