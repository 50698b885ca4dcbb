#!/usr/bin/env bash
# Builds the charcode wheel that the .vsix ships (bundled/charcode-*.whl); the
# extension installs it into its private environment. Run from anywhere.
#   PYTHON   interpreter with pip (default: python3)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/.." && pwd)"
python="${PYTHON:-python3}"
rm -rf "$here/bundled"
mkdir -p "$here/bundled"
"$python" -m pip wheel --no-deps --disable-pip-version-check -q -w "$here/bundled" "$repo"
ls "$here"/bundled/charcode-*.whl >/dev/null
echo "built $(cd "$here" && ls bundled/charcode-*.whl)"
