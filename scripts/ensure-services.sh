#!/usr/bin/env bash
# Make sure what `make test` talks to is running: PostgreSQL, Redis, and Debian's Chromium for
# the browser tests. Starts what is installed but stopped; says clearly what is missing.
set -euo pipefail

missing=()
need_apt=()

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "Starting PostgreSQL…"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -q -h 127.0.0.1 -p 5432 || missing+=("PostgreSQL on 127.0.0.1:5432 (install postgresql, trust auth for user postgres)")
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null; then
    echo "Starting Redis…"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || missing+=("Redis on 127.0.0.1:6379 (install redis-server)")
fi

[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)  # the terminal tests start a real sshd

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing ${need_apt[*]} from Debian…"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    missing+=("Debian packages: ${need_apt[*]} (apt-get install ${need_apt[*]})")
  fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "make test needs these and they are not available:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "PostgreSQL, Redis and Chromium are ready."
