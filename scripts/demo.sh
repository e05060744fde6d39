#!/usr/bin/env bash
# The README's "main job": install what is needed, build, and run the lab demo (as root).
# The demo's firewall is a UFW inside network namespaces it creates and removes; the host's is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm run demo
