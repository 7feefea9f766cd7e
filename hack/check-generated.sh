#!/usr/bin/env bash
# Fails when a committed, generated file (CRDs, the OpenAPI document) differs from what the
# generators produce now: regenerate with `npm run generate` and commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f src/cli/generate.ts ]]; then
  npx tsx src/cli/generate.ts --check
else
  echo "no generators yet"
fi
