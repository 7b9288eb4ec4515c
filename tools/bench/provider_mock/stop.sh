#!/usr/bin/env bash
# Stops the native-provider benchmark mock started by start.sh.
RUN="${PROVIDER_MOCK_RUN_DIR:-/tmp/bursar-bench/run/provider-mock}"
[ -s "$RUN/nginx.pid" ] && kill -QUIT "$(cat "$RUN/nginx.pid")" 2>/dev/null
rm -f "$RUN/nginx.pid"
