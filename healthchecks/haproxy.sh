#!/bin/bash
# Healthcheck for the HAProxy in front of Patroni: healthy (exit 0) when its
# monitor on 127.0.0.1:${HAPROXY_HEALTH_PORT:-8404}/healthz answers 200,
# i.e. HAProxy runs AND sees a primary; else exit 1. Bash's /dev/tcp,
# since the image has no HTTP client.
set -u
port="${HAPROXY_HEALTH_PORT:-8404}"
status="$(timeout 4 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 && head -n1 <&3" 2>&1)" || {
	echo "haproxy: no answer on 127.0.0.1:$port: $status" >&2
	exit 1
}
case "$status" in
"HTTP/1."?" 200"*) exit 0 ;;
*)
	echo "haproxy: no primary behind it ($status)" >&2
	exit 1
	;;
esac
