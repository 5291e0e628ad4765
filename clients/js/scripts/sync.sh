#!/usr/bin/env bash
# After a change of the realtime protocol (hub/events.py, hub/asyncapi.py): refresh the SDK's copy of
# the AsyncAPI document, regenerate src/generated/protocol.ts from it, rebuild, and copy the browser
# bundle the /demo page serves. Run from anywhere; needs the repository's .venv and clients/js's
# node_modules (./test makes both).
set -euo pipefail
cd "$(dirname "$0")/../../.."
.venv/bin/python -c "import json; from hub.asyncapi import build; print(json.dumps(build(), indent=2))" \
  > clients/js/asyncapi.json
cd clients/js
node scripts/gen-types.mjs
node scripts/build.mjs --copy-demo ../../hub/static
