#!/usr/bin/env bash
# The whole test suite: installs the system packages the end-to-end tests need (real registry,
# skopeo, podman) when they are missing, then lint, type check, build and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
bash scripts/start-services.sh
npx eslint .
npx tsc -p tsconfig.json
npm run build --silent
npx vitest run "$@"
