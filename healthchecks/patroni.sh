#!/bin/bash
# Healthcheck for a Patroni node: healthy (exit 0) when Patroni's REST API
# on 127.0.0.1:${PATRONI_PORT:-8008} answers `OPTIONS /health` with 200,
# i.e. Postgres runs, as primary or as standby; else exit 1. Bash's
# /dev/tcp, since the image has no HTTP client.
set -u
port="${PATRONI_PORT:-8008}"
status="$(timeout 4 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'OPTIONS /health HTTP/1.0\r\n\r\n' >&3 && head -n1 <&3" 2>&1)" || {
	echo "patroni: no answer on 127.0.0.1:$port: $status" >&2
	exit 1
}
case "$status" in
"HTTP/1."?" 200"*) exit 0 ;;
*)
	echo "patroni: /health answered: $status" >&2
	exit 1
	;;
esac
