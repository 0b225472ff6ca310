#!/usr/bin/env bash
# Does settlechain still work with the newest release of every dependency?
# Builds a throwaway venv with the newest release of each dependency named in
# pyproject.toml (ignoring our upper bounds and the lock file), prints what it got
# next to the locked version, and runs the test suite there.  Drift is found here
# before users find it.  Exit status: the suite's.
#   scripts/check-newest.sh [pytest args...]      e.g. scripts/check-newest.sh -x -q
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d /tmp/settlechain-newest.XXXXXX)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
names=$(python3 - <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
reqs = list(project["dependencies"])
for extra in ("fast", "test"):
    reqs += project["optional-dependencies"][extra]
names = []
for req in reqs:
    name, _, marker = req.partition(";")
    if "platform_machine" in marker and "x86_64" in marker:
        import platform
        if platform.machine() != "x86_64":
            continue
    names.append(re.match(r"[A-Za-z0-9_.\-]+", name.strip()).group(0))
print(" ".join(sorted(set(names), key=str.lower)))
PY
)
"$venv/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
# shellcheck disable=SC2086
"$venv/bin/pip" install -q --upgrade --upgrade-strategy eager $names 2>&1 | grep -v "is ignored" || true
"$venv/bin/pip" install -q --no-deps -e . 2>&1 | grep -v "is ignored" || true
echo "newest releases installed (locked version in brackets where it differs):"
"$venv/bin/python" - <<'PY'
import re, importlib.metadata as md, pathlib
locked = dict(re.findall(r"^([a-z0-9_.\-]+)==([^ ]+)", pathlib.Path("requirements/test.txt").read_text(), re.M))
for name in sorted(locked):
    try:
        got = md.version(name)
    except md.PackageNotFoundError:
        continue
    mark = "" if got == locked[name] else f"   [locked {locked[name]}]"
    print(f"  {name:24s} {got}{mark}")
PY
"$venv/bin/python" -m pytest "$@"
