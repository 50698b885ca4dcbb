#!/usr/bin/env bash
# CI for the VS Code extension (called by the repo's CI through `make e2e`):
# installs what it needs, builds the charcode wheel and the .vsix, then runs
# the typecheck, the linter, the unit tests and the end-to-end test in a real
# VS Code (code-server + headless Chromium). Exits non-zero on any failure.
#
#   CHARCODE_PYTHON   a Python with charcode installed (trains the E2E model);
#                     default: <repo>/.venv/bin/python
#   CHARCODE_E2E_MODE install (default: the create-environment flow) | python
#
# Works with CI=true and no stdin, on a clean clone; needs root (or sudo) only
# when Debian packages are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
here="$(pwd)"
repo="$(cd .. && pwd)"
exec </dev/null
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
export npm_config_yes=true

started=$SECONDS
step() { echo; echo "=== client-vscode: $* [$(date +%T), +$((SECONDS - started)) s]"; }
die() { echo "client-vscode CI: $*" >&2; exit 1; }

step "system packages"
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v rg >/dev/null || need+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  echo "installing ${need[*]}"
  sudo=""
  [[ "$(id -u)" -eq 0 ]] || sudo="sudo -n"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "chromium, ripgrep, libkrb5-dev, a compiler and python3-venv are present"
fi

step "python with charcode"
python="${CHARCODE_PYTHON:-$repo/.venv/bin/python}"
"$python" -c 'import charcode.training, charcode.server' 2>/dev/null \
  || die "$python cannot import charcode: run \`make setup\` in $repo or set CHARCODE_PYTHON"
echo "$python"

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error

step "package (wheel + bundle + .vsix)"
PYTHON="$python" npm run --silent package

step "typecheck"
npm run --silent typecheck

step "lint"
npm run --silent lint

step "unit tests"
npm run --silent test:unit

step "code-server"
code_server="$(bash scripts/install-code-server.sh)"
echo "$code_server"

step "end-to-end test (${CHARCODE_E2E_MODE:-install} mode)"
# compiled by the unit-test step (tsconfig.test.json)
CHARCODE_PYTHON="$python" CHARCODE_E2E_CODE_SERVER="$code_server" node out/src/test/e2e/run.js

step "done: all client-vscode checks passed in $((SECONDS - started)) s"
