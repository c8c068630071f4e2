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
    exec daphne -b 0.0.0.0 -p "${PORT:-8000}" ${DAPHNE_ARGS:-} config.asgi:application "$@"
    ;;
  worker)
    exec celery -A config worker --loglevel "${LOG_LEVEL:-INFO}" --concurrency "${CELERY_CONCURRENCY:-4}" "$@"
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
