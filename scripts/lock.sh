#!/usr/bin/env bash
# Regenerate the lock files the README installs from, with hashes, from pyproject.toml.
#   requirements/run.txt   the demo: dependencies + the `fast` extra
#   requirements/test.txt  the test suite: + the `test` extra
# Uses uv (https://github.com/astral-sh/uv); install it with `pip install uv` or set UV.
# Run after changing a dependency range in pyproject.toml, then run the suite on the
# result and commit both files; tests/unit/test_lock.py checks they agree with pyproject.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
common=(--generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28
        --no-header --quiet)
"$UV" pip compile pyproject.toml --extra fast "${common[@]}" -o requirements/run.txt
"$UV" pip compile pyproject.toml --extra fast --extra test "${common[@]}" -o requirements/test.txt
for f in requirements/run.txt requirements/test.txt; do
  { printf '# Locked by scripts/lock.sh from pyproject.toml on %s; install with\n' "$(date -u +%F)"
    printf '#   pip install --require-hashes -r %s && pip install --no-deps -e .\n' "$f"
    cat "$f"; } > "$f.new" && mv "$f.new" "$f"
done
echo "wrote requirements/run.txt and requirements/test.txt"
