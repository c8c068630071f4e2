#!/usr/bin/env bash
# Front-end dependencies come from the npm registry at build time (pinned in package-lock.json)
# and are copied into static/vendor/, which the project serves itself: no CDN at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p static/vendor
if [ ! -f package.json ]; then
  exit 0
fi
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi
copy() { install -D -m 0644 "node_modules/$1" "static/vendor/$2"; }
copy htmx.org/dist/htmx.min.js htmx.min.js
copy uplot/dist/uPlot.iife.min.js uplot.min.js
copy uplot/dist/uPlot.min.css uplot.min.css
copy @xterm/xterm/lib/xterm.js xterm/xterm.js
copy @xterm/xterm/css/xterm.css xterm/xterm.css
copy @xterm/addon-fit/lib/addon-fit.js xterm/addon-fit.js
copy @xterm/addon-search/lib/addon-search.js xterm/addon-search.js
# the bundles name their source maps (sourceMappingURL): hashed static storage needs them present
copy @xterm/xterm/lib/xterm.js.map xterm/xterm.js.map
copy @xterm/addon-fit/lib/addon-fit.js.map xterm/addon-fit.js.map
copy @xterm/addon-search/lib/addon-search.js.map xterm/addon-search.js.map
