#!/usr/bin/env bash
# The cost of tracing: the same `direct` run against two fresh gateways with tracing off, on at
# 1% sampling, and on at 100%, spans exported over OTLP/HTTP to a local sink that drops them
# (loadtest/otlp-sink.ts). Each mode gets its own topic prefix, so runs do not share state.
#
#   RT_KAFKA_BROKERS=127.0.0.1:9092 bash loadtest/tracing-cost.sh [rate] [pairs] [duration_s] [rounds]
#
# Defaults: 5000 msgs/s, 200 pairs, 30 s, 1 round (modes interleaved when rounds > 1). Results
# go to loadtest/results/tracing-<mode>-<round>-<time>.json; the summary lines to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${RT_KAFKA_BROKERS:?set RT_KAFKA_BROKERS to a running Kafka (e.g. npm run kafka -- start)}"
rate=${1:-5000}
pairs=${2:-200}
duration=${3:-30}
rounds=${4:-1}
sink_port=${SINK_PORT:-24318}
gw_port=${GW_PORT:-28081}
secret=${RT_JWT_SECRET:-tracing-cost-secret-of-at-least-32-bytes}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

node --import tsx loadtest/otlp-sink.ts --port "$sink_port" >"/tmp/otlp-sink-$stamp.log" 2>&1 &
pids+=($!)
sleep 1
if ! kill -0 "${pids[0]}" 2>/dev/null; then
  echo "the OTLP sink did not start (port $sink_port in use? set SINK_PORT): /tmp/otlp-sink-$stamp.log" >&2
  exit 1
fi

wait_ready() {
  for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:$1/readyz" >/dev/null; then return 0; fi
    sleep 0.5
  done
  echo "gateway on port $1 not ready" >&2
  return 1
}

for round in $(seq 1 "$rounds"); do
  for mode in off 1pct 100pct; do
    prefix="tc${stamp,,}${round}${mode}."
    case $mode in
      off) otel=(OTEL_SDK_DISABLED=true) ;;
      1pct) otel=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port" OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01) ;;
      100pct) otel=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port" OTEL_TRACES_SAMPLER=parentbased_always_on) ;;
    esac
    common=(RT_TOPIC_PREFIX="$prefix" RT_JWT_SECRET="$secret" RT_LOG_LEVEL=warn RT_EXIT_WITH_PARENT=1 "${otel[@]}")
    env "${common[@]}" npx tsx cli/rt.ts topics ensure >/dev/null
    gws=()
    for i in 0 1; do
      env "${common[@]}" RT_GATEWAY_PORT=$((gw_port + i)) RT_GATEWAY_NODE_ID="tc-gw$((i + 1))" \
        node --import tsx gateway/main.ts >"/tmp/tracing-cost-$stamp-$mode-gw$i.log" 2>&1 &
      gws+=($!)
      pids+=($!)
    done
    wait_ready "$gw_port"
    wait_ready $((gw_port + 1))
    echo "== round $round, tracing $mode (${otel[*]})"
    RT_JWT_SECRET="$secret" npx tsx loadtest/main.ts direct --gateway "ws://127.0.0.1:$gw_port/v1/ws" \
      --pairs "$pairs" --rate "$rate" --duration "$duration" --warmup 5 \
      --pids "gw1=${gws[0]},gw2=${gws[1]}" \
      --out "loadtest/results/tracing-$mode-$round-$stamp.json" 2>/dev/null | grep -E "rates|end-to-end|correctness|cpu:" || true
    kill "${gws[@]}" 2>/dev/null || true
    wait "${gws[@]}" 2>/dev/null || true
  done
done
echo "== sink: $(tail -1 "/tmp/otlp-sink-$stamp.log")"
