#!/usr/bin/env bash
# The Python client test group, run by `cargo test` (crates/bursar/tests/python_clients.rs)
# and, for schemathesis, by .ci/run.
#
#   run.sh clients       validate BURSAR_URL's /openapi.json, generate a client from it, and run
#                        pytest (official openai SDK + generated client) against BURSAR_URL
#                        with BURSAR_MASTER_KEY
#   run.sh schemathesis  start `bursar serve` (BURSAR_BIN, default target/debug/bursar) on a
#                        scratch data dir and run schemathesis against its /openapi.json with
#                        the master key; SCHEMATHESIS_EXAMPLES bounds the examples per operation
#
# The venv lives in target/python-venv (BURSAR_PY_VENV) and is rebuilt from PyPI when
# requirements.txt changes. Exit code 77 means Python or PyPI is not available here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${BURSAR_PY_VENV:-$root/target/python-venv}"
mode="${1:-clients}"

ensure_venv() {
  local stamp="$venv/.requirements.sha256"
  local want
  want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v python3 >/dev/null || { echo "python3 is not installed" >&2; exit 77; }
  rm -rf "$venv"
  python3 -m venv "$venv" || { echo "cannot create a venv (python3-venv missing?)" >&2; exit 77; }
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"; then
    rm -rf "$venv"
    echo "cannot install the Python test requirements from PyPI" >&2
    exit 77
  fi
  echo "$want" >"$stamp"
}

clients() {
  : "${BURSAR_URL:?BURSAR_URL is required}" "${BURSAR_MASTER_KEY:?BURSAR_MASTER_KEY is required}"
  ensure_venv
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  "$venv/bin/python" - "$BURSAR_URL/openapi.json" "$work/openapi.json" <<'PY'
import json, sys, urllib.request
from openapi_spec_validator import validate
with urllib.request.urlopen(sys.argv[1]) as response:
    document = json.load(response)
validate(document)  # raises on any violation of the OpenAPI 3.1 schema
json.dump(document, open(sys.argv[2], "w"))
print(f"openapi.json is a valid OpenAPI {document['openapi']} document "
      f"({len(document['paths'])} paths)")
PY
  (cd "$work" && "$venv/bin/openapi-python-client" generate --path openapi.json \
      --config "$here/client-config.yaml" --meta none --output-path "$work/bursar_client" >/dev/null)
  PYTHONPATH="$work${PYTHONPATH:+:$PYTHONPATH}" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
    --rootdir "$here" "$here"
}

schemathesis_run() {
  ensure_venv
  local bin="${BURSAR_BIN:-$root/target/debug/bursar}"
  # Global, not local: the EXIT trap runs after this function has returned.
  local port key log
  data="$(mktemp -d)"
  port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  key="sk-schemathesis-$RANDOM$RANDOM"
  log="$data/bursar.log"
  LITELLM_MASTER_KEY="$key" "$bin" serve --host 127.0.0.1 --port "$port" --data-dir "$data" >"$log" 2>&1 &
  pid=$!
  trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$data"' EXIT
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/health/readiness" >/dev/null 2>&1 && break
    sleep 0.1
  done
  # From the scratch dir: schemathesis writes its state under the working directory.
  cd "$data"
  "$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-10}" \
    --phases examples,coverage,fuzzing \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --request-timeout 10 \
    --no-color || { echo "--- bursar log ---"; tail -50 "$log"; exit 1; }
}

case "$mode" in
  clients) clients ;;
  schemathesis) schemathesis_run ;;
  *) echo "usage: $0 clients|schemathesis" >&2; exit 2 ;;
esac
