#!/usr/bin/env bash
# Starts the native-provider benchmark mock (canned Anthropic and Bedrock answers) on 127.0.0.1:$PORT
# (default 18190), pinned to CPU0 beside the shared mock. Stop: stop.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PORT="${PROVIDER_MOCK_PORT:-18190}"
RUN="${PROVIDER_MOCK_RUN_DIR:-/tmp/bursar-bench/run/provider-mock}"
mkdir -p "$RUN"/tmp/{body,proxy,fastcgi,uwsgi,scgi}
cp "$HERE/mock.js" "$RUN/mock.js"
python3 "$HERE/gen_bodies.py" "$RUN/bodies.json"
sed -e "s|__RUN_DIR__|$RUN|g" -e "s|__PORT__|$PORT|g" "$HERE/nginx.conf.template" >"$RUN/nginx.conf"
nginx -t -q -c "$RUN/nginx.conf" -p "$RUN/"
taskset -c 0 nginx -c "$RUN/nginx.conf" -p "$RUN/"
for _ in $(seq 50); do [ -s "$RUN/nginx.pid" ] && break; sleep 0.1; done
curl -fsS -m 5 -X POST "http://127.0.0.1:$PORT/v1/messages" -d '{"model":"m"}' | grep -q '"type":"message"'
curl -fsS -m 5 -X POST "http://127.0.0.1:$PORT/v1/messages" -d '{"model":"m","stream":true}' | grep -q 'message_stop'
curl -fsS -m 5 -X POST "http://127.0.0.1:$PORT/model/m/converse" -d '{}' | grep -q '"stopReason"'
curl -fsS -m 5 -X POST "http://127.0.0.1:$PORT/model/m/converse-stream" -d '{}' | grep -qa 'metadata'
cat "$RUN/nginx.pid"
