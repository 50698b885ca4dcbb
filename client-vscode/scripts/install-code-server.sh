#!/usr/bin/env bash
# Installs code-server (a real VS Code workbench served over HTTP) for the
# end-to-end test into a cache folder outside node_modules, and prints the path
# of its launcher. Idempotent: a finished install is reused.
#
# code-server 4.100.3 (VS Code 1.100.3) is the newest release that runs on
# node 20. Its install needs three workarounds on an offline machine:
#   - node-pty's postinstall runs `npx node-gyp`: npm_config_yes=true;
#   - @vscode/ripgrep downloads rg from outside: we seed its download cache
#     with Debian's rg packed as the tarball it expects;
#   - argon2/kerberos compile from source: libkrb5-dev and local node headers.
set -euo pipefail

VERSION="${CODE_SERVER_VERSION:-4.100.3}"
CACHE="${CHARCODE_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/charcode-vscode-e2e}"
PREFIX="$CACHE/code-server-$VERSION"
BIN="$PREFIX/node_modules/.bin/code-server"

if [[ -f "$PREFIX/.installed" && -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

log() { echo "[install-code-server] $*" >&2; }

RG="$(command -v rg || true)"
if [[ -z "$RG" ]]; then
  log "ripgrep (rg) is missing: apt-get install -y ripgrep"
  exit 1
fi

# 1) seed @vscode/ripgrep's download cache with the system rg
TMP="${TMPDIR:-/tmp}"
for RGVER in 1.15.11 1.15.9 1.15.10 1.15.12 1.15.13 1.15.14; do
  dir="$TMP/vscode-ripgrep-cache-$RGVER"
  mkdir -p "$dir"
  stage="$(mktemp -d)"
  cp "$RG" "$stage/rg"
  for asset in ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz ripgrep-v13.0.0-13-x86_64-unknown-linux-musl.tar.gz; do
    [[ -f "$dir/$asset" ]] || tar czf "$dir/$asset" -C "$stage" rg
  done
  rm -rf "$stage"
done

# 2) install into a private prefix (not this package's node_modules)
rm -rf "$PREFIX"
mkdir -p "$PREFIX"
echo '{"name":"charcode-e2e-code-server","private":true}' > "$PREFIX/package.json"
log "installing code-server@$VERSION into $PREFIX (compiles native modules, a few minutes)"
export npm_config_yes=true
# its postinstall refuses to run as root without this (npm 11 no longer knows
# the option, but passes it on to the script's environment)
export npm_config_unsafe_perm=true
if [[ -f /usr/include/node/node.h ]]; then
  export npm_config_nodedir=/usr
fi
(
  cd "$PREFIX"
  nice -n 10 npm install --no-save --no-audit --no-fund --loglevel=error \
    "code-server@$VERSION" >&2
)
[[ -x "$BIN" ]] || { log "code-server launcher not found at $BIN"; exit 1; }
touch "$PREFIX/.installed"
echo "$BIN"
