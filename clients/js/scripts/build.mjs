#!/usr/bin/env node
// Build the SDK: dist/esm (ES modules), dist/cjs (CommonJS), dist/types (.d.ts) with tsc, and
// dist/gigwire-client.js (one ES module for the browser, used by gigwire's /demo page) plus its
// minified copy dist/gigwire-client.min.js with esbuild. `--copy-demo DIR` also copies the browser
// bundle to DIR/gigwire-client.js (hub/static).
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(ROOT, "node_modules", ".bin", name);
const run = (cmd, args) => execFileSync(cmd, args, { cwd: ROOT, stdio: "inherit" });

rmSync(join(ROOT, "dist"), { recursive: true, force: true });
run(bin("tsc"), ["-p", "tsconfig.json"]);
run(bin("tsc"), ["-p", "tsconfig.json", "--module", "CommonJS", "--moduleResolution", "Node10", "--outDir", "dist/cjs"]);
mkdirSync(join(ROOT, "dist", "cjs"), { recursive: true });
// package.json says "type": "module": the CommonJS files need their own marker.
writeFileSync(join(ROOT, "dist", "cjs", "package.json"), '{"type": "commonjs"}\n');
const banner = "// @gigwire/client (clients/js): built by scripts/build.mjs from TypeScript; do not edit.";
const common = ["src/index.ts", "--bundle", "--format=esm", "--target=es2020", "--platform=neutral", `--banner:js=${banner}`];
run(bin("esbuild"), [...common, "--outfile=dist/gigwire-client.js", "--log-level=warning"]);
run(bin("esbuild"), [...common, "--minify", "--outfile=dist/gigwire-client.min.js", "--log-level=warning"]);
// The declarations as an app uses them: test/consumer.ts must type-check against dist/types.
run(bin("tsc"), ["-p", "test/tsconfig.json"]);
const i = process.argv.indexOf("--copy-demo");
if (i >= 0) copyFileSync(join(ROOT, "dist", "gigwire-client.js"), join(process.argv[i + 1], "gigwire-client.js"));
console.log("built dist/esm, dist/cjs, dist/types, dist/gigwire-client.js, dist/gigwire-client.min.js");
