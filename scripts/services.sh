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

# Browser and Node tools of tests/demo and tests/sio: Debian's chromium, and socket.io-client 4.x, ws and
# playwright-core from npm into .deps/node (ignored by git). playwright-core drives the system Chromium;
# it never downloads a browser of its own. Whatever cannot be installed here makes those tests skip,
# saying why. Output goes to .deps/install.log, shown only when a step fails.
mkdir -p .deps
_deps_log=.deps/install.log
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium with apt-get (browser tests)" >&2
    if ! { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } \
         >"$_deps_log" 2>&1; then
      tail -n 20 "$_deps_log" >&2
      echo "warning: chromium could not be installed; browser tests will be skipped" >&2
    fi
  else
    echo "warning: chromium missing and cannot be installed (not root); browser tests will be skipped" >&2
  fi
fi
_node_want="socket.io-client@4 playwright-core@1 ws@8"
_node_stamp=.deps/node/.gigwire-installed
if command -v npm >/dev/null 2>&1; then
  if [ ! -f "$_node_stamp" ] || [ "$(cat "$_node_stamp")" != "$_node_want" ]; then
    echo "installing $_node_want into .deps/node with npm" >&2
    mkdir -p .deps/node
    # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: belt and braces; playwright-core itself downloads nothing.
    # shellcheck disable=SC2086
    if PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix .deps/node --no-audit --no-fund \
         $_node_want >"$_deps_log" 2>&1; then
      echo "$_node_want" > "$_node_stamp"
    else
      tail -n 20 "$_deps_log" >&2
      echo "warning: npm install failed; Node and browser tests will be skipped" >&2
    fi
  fi
else
  echo "warning: npm missing; Node and browser tests will be skipped" >&2
fi
