#!/usr/bin/env bash
# Builds the installable extension: the charcode wheel, the production bundle,
# then dist/charcode-<version>.vsix (vsce 3.x; no prompts, so it runs in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-wheel.sh
node scripts/bundle.mjs --production
version="$(node -p 'require("./package.json").version')"
npx --no-install vsce package --no-dependencies --allow-missing-repository --skip-license \
  --out "dist/charcode-$version.vsix"
echo "packaged dist/charcode-$version.vsix"
