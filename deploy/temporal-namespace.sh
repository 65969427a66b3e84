#!/bin/sh
# The namespace Stanch runs in, created once the server answers (auto-setup used to create `default`).
# Run by the `temporal-namespace` one-shot in docker-compose.yml; `stanch migrate` then adds the search
# attributes to it.
set -eu

attempt=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS"; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 30 ]; then
    echo "Temporal at $TEMPORAL_ADDRESS is not healthy after $attempt tries" >&2
    exit 1
  fi
  sleep 2
done

temporal operator namespace describe --address "$TEMPORAL_ADDRESS" -n "$NAMESPACE" >/dev/null 2>&1 \
  || temporal operator namespace create --address "$TEMPORAL_ADDRESS" -n "$NAMESPACE" --retention "$RETENTION"
echo "namespace $NAMESPACE: ready"
