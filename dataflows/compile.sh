#!/usr/bin/env bash
# Recompile every Chronon config of this repository into production/ (JSON, checked in).
#
#   bash dataflows/compile.sh          # from the repo root, or from anywhere: bash /path/to/dataflows/compile.sh
#
# 1. makes sure the Chronon Python API (chronon-ai) + compile dependencies are importable (pip install otherwise);
# 2. deletes the previously compiled production/{staging_queries,group_bys,joins} (so removed configs leave no
#    stale JSON behind) and recompiles every config file with Chronon's own compile.py;
# 3. runs scripts/check_compiled.py: every file is valid JSON, the set of compiled files equals the set of Python
#    definitions, cross-config checks, and prints a summary table.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
cd "$ROOT"

if ! "$PYTHON" -c "import ai.chronon.repo.compile, thrift, click, sqlglot" >/dev/null 2>&1; then
  echo ">> installing chronon-ai (compile dependencies)"
  "$PYTHON" -m pip install --quiet --no-deps chronon-ai
  # chronon-ai declares pyspark, which the compiler does not need: no conflict warning
  "$PYTHON" -m pip install --quiet --no-warn-conflicts "thrift<0.14" click sqlglot
fi

COMPILE_PY="$("$PYTHON" -c 'import ai.chronon.repo.compile as c; print(c.__file__)')"
echo ">> compile.py: $COMPILE_PY"

rm -rf "$ROOT/production/staging_queries" "$ROOT/production/group_bys" "$ROOT/production/joins"
mkdir -p "$ROOT/production"

LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT

# One invocation per config file: compile.py silently skips files that fail to import when given a folder,
# whereas a single file makes the failure fatal. Order: staging queries, group bys, joins.
for folder in staging_queries group_bys joins; do
  while IFS= read -r conf; do
    echo ">> compiling $conf"
    if ! PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" "$COMPILE_PY" \
        --chronon_root="$ROOT" --conf="$conf" --output_root=production --force-overwrite -y >"$LOG" 2>&1; then
      cat "$LOG"
      echo "!! compile failed for $conf" >&2
      exit 1
    fi
    if grep -q -e "Could not write" -e "Failed to extract" -e "Traceback" "$LOG"; then
      cat "$LOG"
      echo "!! compile reported errors for $conf" >&2
      exit 1
    fi
  done < <(cd "$ROOT" && find "$folder" -name '*.py' ! -name '__init__.py' | LC_ALL=C sort)
done

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" "$ROOT/scripts/check_compiled.py" "$ROOT"
