#!/usr/bin/env bash
# Admission-control overhead with the shared harness (../shared/bench): Bursar on one core
# (CPU1), the governed path (a virtual key whose user, team and organization have budgets and
# the key rpm/tpm limits) next to the master-key path, each against the direct baseline.
#
# usage: tools/bench/admission.sh            (after: cargo build --release -p bursar)
# env:   BENCH=<harness dir>  RATES="200 500 1000 2000"  ENDPOINTS="chat stream embeddings"
#        PORT=4000  plus any knob of run_gateway_bench.sh (DURATION, PROBE, MAX_DURATION…)
#        RUNS="direct master governed"  which runs to make (direct is the baseline the
#          others compare with: keep it unless a direct-latest result exists); add
#          "anthropic" / "bedrock" for the governed key through an Anthropic / Bedrock
#          deployment (canned Messages / Converse answers from tools/bench/provider_mock,
#          Bedrock requests SigV4-signed), next to the OpenAI-compatible one
#        SPEND=off  the spend ledger writes nothing (disable_spend_logs and
#          disable_spend_updates); runs are labelled …-nospend
#        REDIS=redis://127.0.0.1:6379  admission through the Redis backend (a fresh key
#          namespace per run) instead of in-process counters; runs are labelled …-redis
# Results: /tmp/bursar-bench/results/{direct,bursar-master,bursar-governed}-latest/summary.md
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH="${BENCH:-$ROOT/../shared/bench}"
BIN="${BIN:-$ROOT/target/release/bursar}"
PORT="${PORT:-4000}"
export RATES="${RATES:-200 500 1000 2000}"
RUNS="${RUNS:-direct master governed}"
SPEND="${SPEND:-on}"
REDIS="${REDIS:-}"
SUFFIX=""
[ "$SPEND" = off ] && SUFFIX="-nospend"
ADMISSION=memory
[ -n "$REDIS" ] && SUFFIX="$SUFFIX-redis" && ADMISSION=redis
MASTER="sk-bench-master-key"
WORK="$(mktemp -d /tmp/bursar-admission-bench.XXXXXX)"
[ -x "$BIN" ] || { echo "build first: cargo build --release -p bursar" >&2; exit 2; }

cat >"$WORK/config.yaml" <<EOF
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:18180/v1
      api_key: sk-mock
  - model_name: text-embedding-3-small
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: http://127.0.0.1:18180/v1
      api_key: sk-mock
general_settings:
  master_key: $MASTER
  database_url: sqlite://$WORK/bench.db
EOF
# Native-provider deployments, inserted before general_settings (the model list is the
# file's first section).
case " $RUNS " in *" anthropic "*)
  sed -i 's|^general_settings:|  - model_name: claude\n    litellm_params:\n      model: anthropic/claude-haiku-4-5\n      api_base: http://127.0.0.1:18190\n      api_key: sk-ant-mock\ngeneral_settings:|' "$WORK/config.yaml" ;;
esac
case " $RUNS " in *" bedrock "*)
  sed -i 's|^general_settings:|  - model_name: bedrock-claude\n    litellm_params:\n      model: bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0\n      aws_bedrock_runtime_endpoint: http://127.0.0.1:18190\n      aws_region_name: us-east-1\n      aws_access_key_id: AKIDBENCH\n      aws_secret_access_key: bench-secret\ngeneral_settings:|' "$WORK/config.yaml" ;;
esac
if [ "$SPEND" = off ]; then
  printf '  disable_spend_logs: true\n  disable_spend_updates: true\n' >>"$WORK/config.yaml"
fi
if [ -n "$REDIS" ]; then
  printf '  redis_url: %s\n  redis_namespace: bench-%s\n' "$REDIS" "$$" >>"$WORK/config.yaml"
fi

if [ -n "$REDIS" ] && [[ "$REDIS" == *127.0.0.1* || "$REDIS" == *localhost* ]]; then
  # A local Redis stands in for a separate server: keep it off the gateway's core (CPU1),
  # beside the mock and the load generator on CPU0.
  for pid in $(pidof redis-server 2>/dev/null); do taskset -pc 0 "$pid" >/dev/null || true; done
fi
"$BENCH/start_upstream.sh" >/dev/null
case " $RUNS " in *" anthropic "*|*" bedrock "*) "$ROOT/tools/bench/provider_mock/start.sh" >/dev/null ;; esac
taskset -c 1 "$BIN" serve --config "$WORK/config.yaml" --host 127.0.0.1 --port "$PORT" \
  --data-dir "$WORK" >"$WORK/bursar.log" 2>&1 &
GW=$!
cleanup() {
  kill "$GW" 2>/dev/null || true
  "$BENCH/stop_upstream.sh" >/dev/null 2>&1 || true
  "$ROOT/tools/bench/provider_mock/stop.sh" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/health/readiness" >/dev/null && break
  sleep 0.1
done

api() {  # path json
  curl -sf "http://127.0.0.1:$PORT$1" -H "Authorization: Bearer $MASTER" \
    -H 'Content-Type: application/json' -d "$2"
}
# Budgets and limits high enough never to refuse: the point is what checking them costs.
ORG=$(api /organization/new '{"organization_alias":"bench-org","max_budget":1000000}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["organization_id"])')
api /user/new '{"user_id":"bench-user","max_budget":1000000}' >/dev/null
api /team/new "{\"team_id\":\"bench-team\",\"organization_id\":\"$ORG\",\"max_budget\":1000000,\"members_with_roles\":[{\"role\":\"user\",\"user_id\":\"bench-user\"}]}" >/dev/null
KEY=$(api /key/generate '{"user_id":"bench-user","team_id":"bench-team","max_budget":1000000,"rpm_limit":100000000,"tpm_limit":100000000000}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

# The governed key must really be governed: its answers carry the limiter's headers.
curl -sD - -o /dev/null "http://127.0.0.1:$PORT/v1/chat/completions" -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: application/json' \
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}' |
  grep -qi '^x-ratelimit-api_key-remaining-requests' || { echo "governed key shows no limits" >&2; exit 1; }

cd "$BENCH"
RESULTS=/tmp/bursar-bench/results
NOTE_BASE="bursar $(git -C "$ROOT" rev-parse --short HEAD), CPU1, spend ledger $SPEND, admission $ADMISSION"
COMPARED=()
for run in $RUNS; do
  case "$run" in
    direct) ./run_gateway_bench.sh http://127.0.0.1:18180/v1 none direct ;;
    master)
      BASELINE=$RESULTS/direct-latest NOTE="$NOTE_BASE, master key" \
        ./run_gateway_bench.sh "http://127.0.0.1:$PORT/v1" "$MASTER" "bursar-master$SUFFIX"
      COMPARED+=("$RESULTS/bursar-master$SUFFIX-latest") ;;
    governed)
      BASELINE=$RESULTS/direct-latest NOTE="$NOTE_BASE, key+user+team+org budgets, rpm/tpm" \
        ./run_gateway_bench.sh "http://127.0.0.1:$PORT/v1" "$KEY" "bursar-governed$SUFFIX"
      COMPARED+=("$RESULTS/bursar-governed$SUFFIX-latest") ;;
    anthropic)
      BASELINE=$RESULTS/direct-latest CHAT_MODEL=claude \
        NOTE="$NOTE_BASE, governed key, Anthropic deployment (translated both ways)" \
        ./run_gateway_bench.sh "http://127.0.0.1:$PORT/v1" "$KEY" "bursar-anthropic$SUFFIX"
      COMPARED+=("$RESULTS/bursar-anthropic$SUFFIX-latest") ;;
    bedrock)
      BASELINE=$RESULTS/direct-latest CHAT_MODEL=bedrock-claude \
        NOTE="$NOTE_BASE, governed key, Bedrock deployment (Converse, SigV4)" \
        ./run_gateway_bench.sh "http://127.0.0.1:$PORT/v1" "$KEY" "bursar-bedrock$SUFFIX"
      COMPARED+=("$RESULTS/bursar-bedrock$SUFFIX-latest") ;;
    *) echo "unknown run: $run" >&2; exit 2 ;;
  esac
done
if [ ${#COMPARED[@]} -gt 0 ]; then
  python3 lib/report.py compare --baseline "$RESULTS/direct-latest" "${COMPARED[@]}"
fi
# What the ledger recorded for the governed key (nothing with SPEND=off).
echo "spend ledger ($SPEND), top key:"
curl -s "http://127.0.0.1:$PORT/global/spend/keys?limit=1" -H "Authorization: Bearer $MASTER" || true
echo
