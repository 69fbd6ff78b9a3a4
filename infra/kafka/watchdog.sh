#!/bin/sh
# Runs one Kafka JVM and ties its life to the Node process that started it ($RT_WATCH_PID):
# if that process dies, even by SIGKILL, the JVM is stopped, so no broker is ever orphaned.
# SIGTERM/SIGINT to this script are forwarded to the JVM (Kafka shuts down cleanly on TERM).
"$@" &
child=$!
echo "$child" > "$RT_JVM_PID_FILE"
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit $?' TERM INT
while kill -0 "$RT_WATCH_PID" 2>/dev/null; do
  if ! kill -0 "$child" 2>/dev/null; then
    wait "$child"
    exit $?
  fi
  sleep 1 &
  wait $!
done
kill -TERM "$child" 2>/dev/null
i=0
while kill -0 "$child" 2>/dev/null && [ $i -lt 30 ]; do sleep 0.5; i=$((i + 1)); done
kill -KILL "$child" 2>/dev/null
exit 1
