#!/bin/sh
# One image, several roles. `web` migrates first, then serves the ASGI app. Django's migrate
# takes no lock: with several web replicas, upgrade one first (or run `manage migrate` once).
set -eu
role="${1:-web}"
shift || true
case "$role" in
  web)
    python manage.py migrate --noinput
    # Add --proxy-headers via DAPHNE_ARGS only behind a proxy you control (it trusts X-Forwarded-For).
    # 4 MiB frames reach the app: fleet-node frames over 1 MiB get a typed close (4400)
    daphne -b 0.0.0.0 -p "${PORT:-8000}" --websocket-max-message-size 4194304 --websocket-max-frame-size 4194304 ${DAPHNE_ARGS:-} config.asgi:application "$@" &
    server=$!
    # On stop, drain first: the fleet nodes on this replica get `goaway` (a jittered reconnect
    # within DRAIN_RECONNECT_MS) and close 1012, then daphne stops; they reconnect elsewhere.
    drain() {
      python manage.py drain_nodes --replica "$(hostname):$server" --max-reconnect-ms "${DRAIN_RECONNECT_MS:-5000}" || true
      sleep "${DRAIN_GRACE_SECONDS:-2}"
      kill -TERM "$server" 2>/dev/null || true
    }
    trap drain TERM INT
    status=0
    wait "$server" || status=$?
    # a trapped signal interrupts the first wait: wait again for daphne to finish
    if kill -0 "$server" 2>/dev/null; then wait "$server" || status=$?; fi
    exit "$status"
    ;;
  worker)
    # everything but polling: bulk jobs, rollups, the beat's claim tick (the default queue)
    exec celery -A config worker --loglevel "${LOG_LEVEL:-INFO}" --queues celery --concurrency "${CELERY_CONCURRENCY:-4}" "$@"
    ;;
  poller)
    # `poller K`: the one process that polls queue poll.K (miners with id % FLEET_POLL_QUEUES
    # == K), so a rig's ProtoOS session and connections stay in one process. Run one per
    # K in 0 .. FLEET_POLL_QUEUES-1 (docker/compose.yaml runs poll-0 .. poll-3).
    k="${1:?usage: poller K (0 <= K < FLEET_POLL_QUEUES)}"
    shift
    case "$k" in *[!0-9]*) echo "poller: K must be a number, got $k" >&2; exit 2 ;; esac
    if [ "$k" -ge "${FLEET_POLL_QUEUES:-4}" ]; then
      echo "poller: K=$k but FLEET_POLL_QUEUES=${FLEET_POLL_QUEUES:-4} (queues 0..$((${FLEET_POLL_QUEUES:-4} - 1)))" >&2
      exit 2
    fi
    exec celery -A config worker --loglevel "${LOG_LEVEL:-INFO}" --queues "poll.$k" --concurrency 1 --prefetch-multiplier 1 --hostname "poll$k@%h" "$@"
    ;;
  beat)
    exec celery -A config beat --loglevel "${LOG_LEVEL:-INFO}" --schedule "${DATA_DIR:-/data}/celerybeat-schedule" "$@"
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
