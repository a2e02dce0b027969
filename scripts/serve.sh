#!/usr/bin/env bash
# Install contentgremlin into .venv and serve the site in this checkout (db.sqlite, content/).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
exec .venv/bin/gremlin serve "$@"
