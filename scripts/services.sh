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

# The TypeScript SDK (clients/js) for tests/sdk_js: its devDependencies (typescript, esbuild) into
# clients/js/node_modules with `npm ci`, and its build into clients/js/dist. Each step is redone only
# when its inputs change (a hash in .deps/sdk-js-*), so a rerun costs two hashes; without npm, or
# when a step fails, the SDK tests skip saying why.
if command -v npm >/dev/null 2>&1 && [ -f clients/js/package-lock.json ]; then
  _sdk=clients/js
  _sdk_deps=$(cat "$_sdk/package.json" "$_sdk/package-lock.json" | sha256sum | cut -c1-16)
  if [ ! -x "$_sdk/node_modules/.bin/tsc" ] || [ "$(cat .deps/sdk-js-deps 2>/dev/null)" != "$_sdk_deps" ]; then
    echo "installing the devDependencies of clients/js with npm" >&2
    if npm ci --prefix "$_sdk" --no-audit --no-fund >"$_deps_log" 2>&1; then
      echo "$_sdk_deps" > .deps/sdk-js-deps
    else
      tail -n 20 "$_deps_log" >&2
      echo "warning: npm ci in clients/js failed; the SDK tests will be skipped" >&2
    fi
  fi
  _sdk_src=$(find "$_sdk/src" "$_sdk/scripts" "$_sdk/tsconfig.json" "$_sdk/package.json" "$_sdk/test/consumer.ts" \
    "$_sdk/test/tsconfig.json" -type f -print0 \
    | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
  if [ -x "$_sdk/node_modules/.bin/tsc" ] && { [ ! -f "$_sdk/dist/esm/index.js" ] \
       || [ "$(cat .deps/sdk-js-build 2>/dev/null)" != "$_sdk_src" ]; }; then
    echo "building clients/js" >&2
    if node "$_sdk/scripts/build.mjs" >"$_deps_log" 2>&1; then
      echo "$_sdk_src" > .deps/sdk-js-build
    else
      tail -n 20 "$_deps_log" >&2
      echo "warning: clients/js did not build; the SDK tests will be skipped" >&2
    fi
  fi
fi
