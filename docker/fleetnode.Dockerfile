# syntax=docker/dockerfile:1
# The fleet-node agent alone: the drivers (miners/) and the agent (fleetnode/), no server code.
# Build from the repository root:  docker build -f docker/fleetnode.Dockerfile -t rigwarden-node .
# Run it on the miners' LAN with host networking (docker/fleetnode.compose.yaml, docs/fleet-node.md).

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLEETNODE_STATE_DIR=/var/lib/rigwarden-node
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10002 rigwarden-node \
 && useradd --system --uid 10002 --gid rigwarden-node --home-dir /nonexistent --shell /usr/sbin/nologin rigwarden-node \
 && install -d -o rigwarden-node -g rigwarden-node -m 0700 /var/lib/rigwarden-node
WORKDIR /app
COPY requirements/base.txt requirements/fleetnode.txt requirements/
RUN pip install -r requirements/fleetnode.txt
# Code stays root-owned; the agent writes only its state directory.
COPY miners/ miners/
COPY fleetnode/ fleetnode/
USER rigwarden-node
VOLUME ["/var/lib/rigwarden-node"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import json,subprocess,sys; s=json.loads(subprocess.run([sys.executable,'-m','fleetnode','status','--json'],capture_output=True,text=True).stdout); sys.exit(0 if s.get('last',{}).get('connected') else 1)"
ENTRYPOINT ["/usr/bin/tini", "--", "python", "-m", "fleetnode"]
CMD ["run"]
