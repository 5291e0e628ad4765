# Sourced by ./run and ./test: make sure .venv exists and holds gigwire with its dependencies.
# Usage: . scripts/venv.sh [extra]   (extra: "test" also installs the test tools)
# Reinstalls only when pyproject.toml (or clients/python/pyproject.toml) changed since the last install.
set -euo pipefail
# The embedded PostgreSQL (pgserver) runs useradd when started as root: keep the sbin directories
# on PATH even when the caller's PATH is minimal.
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin:/sbin" ;; esac
_extra="${1:-}"
_py="${PYTHON:-}"
if [ -z "$_py" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
      _py="$candidate"; break
    fi
  done
fi
if [ -z "$_py" ]; then
  echo "gigwire needs Python 3.11 or newer on PATH (or PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$_py" --version)" >&2
  "$_py" -m venv .venv || { echo "python venv failed: on Debian/Ubuntu run 'apt-get install python3-venv'" >&2; exit 1; }
fi
_stamp=".venv/.gigwire-installed${_extra:+-$_extra}"
# The test tools include the Python SDK (clients/python, installed editable): its pyproject counts too.
_want="$(cat pyproject.toml clients/python/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$_stamp" ] || [ "$(cat "$_stamp")" != "$_want" ]; then
  echo "installing gigwire${_extra:+ with [$_extra]} into .venv" >&2
  # pip's chatter goes to a log, shown only when the install fails.
  if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip \
         && .venv/bin/python -m pip install --disable-pip-version-check -e ".${_extra:+[$_extra]}" \
         && { [ "$_extra" != "test" ] || .venv/bin/python -m pip install --disable-pip-version-check -e clients/python; }; } \
       > .venv/install.log 2>&1; then
    tail -n 40 .venv/install.log >&2
    echo "installing gigwire failed; the whole log is in .venv/install.log" >&2
    exit 1
  fi
  echo "$_want" > "$_stamp"
fi
