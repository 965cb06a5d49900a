#!/usr/bin/env bash
# Builds the browser code of the web UI: bundles web/src/*.js (with their npm
# dependencies, pinned in web/package-lock.json) into
# internal/httpd/web/static/, which is committed so that `go build` alone
# works. Run it after changing anything under web/; the test command does not
# (TestWebBundleFresh fails when the committed bundle is older than web/).
#
# The first line of each bundle records the SHA-256 of web/'s sources
# (package.json, package-lock.json, src/*), computed as sources_hash below.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../web"

# sources_hash: for each file in byte order of its path, the path and a
# newline, then its content; the SHA-256 of all that, in hex.
sources_hash() {
  local f
  find package.json package-lock.json src -type f -print | LC_ALL=C sort | while read -r f; do
    printf '%s\n' "$f"
    cat "$f"
  done | sha256sum | cut -d' ' -f1
}

npm ci --no-audit --no-fund
hash=$(sources_hash)
out=../internal/httpd/web/static
for src in src/*.js; do
  name=$(basename "$src")
  ./node_modules/.bin/esbuild "$src" --bundle --format=esm --target=es2020 --minify \
    --legal-comments=eof --log-level=warning \
    "--banner:js=// Built by scripts/build-web.sh from web/ (sources sha256 $hash). Do not edit." \
    --outfile="$out/$name"
  echo "built $out/$name"
done
