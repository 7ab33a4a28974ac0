#!/bin/sh
# Entrypoint of the haproxy:2.8 stand-in, after the official image's: a
# first argument that is an option means "haproxy <options>"; haproxy runs in
# master-worker mode in the foreground.
set -e
if [ "${1#-}" != "$1" ]; then
	set -- haproxy "$@"
fi
if [ "$1" = 'haproxy' ]; then
	shift
	set -- haproxy -W -db "$@"
fi
exec "$@"
