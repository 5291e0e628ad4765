# Sourced by ./test: make sure the binaries the tests need are on this machine.
# redis-server: the tests start private Redis servers (fault and cluster tests restart them), so the
# binary must exist even when a shared Redis is reachable. Installed with apt-get when root.
_need_apt=()
command -v redis-server >/dev/null 2>&1 || _need_apt+=(redis-server)
if [ ${#_need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${_need_apt[*]} with apt-get" >&2
    (apt-get install -y -q "${_need_apt[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${_need_apt[@]}" >/dev/null; }) >&2
  else
    echo "warning: ${_need_apt[*]} missing and cannot be installed (not root); some tests will be skipped" >&2
  fi
fi
