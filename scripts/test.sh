#!/usr/bin/env bash
# Ferry's test command (`make test`). On a fresh Debian machine it installs what
# is missing, runs the static checks, starts a private PostgreSQL and runs the
# whole Go test suite with the race detector. Nothing is skipped: a missing tool
# that cannot be installed is a failure.
#
#   scripts/test.sh          full: installs, checks, go test -race ./...
#   scripts/test.sh short    checks, then go test -short ./... (no -race)
#   scripts/test.sh lint     installs and checks only (gofmt, vet, staticcheck, tidy)
#
# PKGS (default ./...) limits the packages go test runs.
# Tools built here are cached outside the clone, keyed by version, in
# ${XDG_CACHE_HOME:-$HOME/.cache}/ferry-tools.
set -euo pipefail

STATICCHECK_VERSION=v0.8.2 # supports Go 1.26 (its go.mod says go 1.26.0)
MAILPIT_VERSION=v1.33.1     # the real SMTP server of the mail tests (TESTING.md)
GOSEC_VERSION=v2.30.0       # security linter (docs/SECURITY.md); exclusions justified in check_gosec
GO_TEST_TIMEOUT=40m

mode=${1:-full}
case "$mode" in full | short | lint) ;; *)
  echo "usage: scripts/test.sh [full|short|lint]" >&2
  exit 2
  ;;
esac
PKGS=${PKGS:-./...}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
start_all=$SECONDS

say() { printf '==> %s\n' "$*"; }
die() {
  printf 'test.sh: %s\n' "$*" >&2
  exit 1
}

failed=()
join() { # join ITEM... prints the items separated by "; "
  local out=$1
  shift
  for x in "$@"; do out+="; $x"; done
  printf '%s' "$out"
}
# step NAME CMD... runs one check, times it, and records a failure without
# stopping, so that one run reports every problem.
step() {
  local name=$1 t=$SECONDS
  shift
  say "$name"
  if "$@"; then
    say "$name: ok ($((SECONDS - t))s)"
  else
    say "$name: FAILED ($((SECONDS - t))s)"
    failed+=("$name")
  fi
}

# ---------------------------------------------------------------- prerequisites

command -v go >/dev/null 2>&1 || die "go is not on PATH (Go $(sed -n 's/^go //p' go.mod) is needed)"
say "$(go version) on $(nproc) cores; mode $mode"

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true; }
ssh_ok() { ssh -V >/dev/null 2>&1 && command -v sftp >/dev/null 2>&1; }

apt_updated=
apt_install() { # apt_install [--reinstall] PKG...
  if [ "$(id -u)" != 0 ]; then
    die "missing or broken: ${*#--reinstall }; not root, so install it yourself: sudo apt-get update && sudo apt-get install -y --no-install-recommends $*"
  fi
  if [ -z "$apt_updated" ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null || die "apt-get update failed"
    apt_updated=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null ||
    die "apt-get install $* failed"
}

install_prereqs() {
  local missing=()
  if [ "$mode" = lint ]; then return 0; fi
  [ -n "$(pgbin)" ] && [ -x "$(pgbin)/initdb" ] || missing+=(postgresql)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  # SFTP clients driven by internal/sftpd's end-to-end tests.
  command -v rclone >/dev/null 2>&1 || missing+=(rclone)
  command -v lftp >/dev/null 2>&1 || missing+=(lftp)
  command -v sshpass >/dev/null 2>&1 || missing+=(sshpass)
  # Headless browser for internal/httpd's end-to-end tests (chromedp).
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  # Node.js runs tus-js-client, the independent tus client of internal/httpd.
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  # sqlmap attacks every public route of the running server (internal/attack).
  command -v sqlmap >/dev/null 2>&1 || missing+=(sqlmap)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  # openssh-client is sometimes half-installed on these images (TESTING.md).
  if ! ssh_ok; then
    apt_install --reinstall openssh-client
    ssh_ok || die "ssh/sftp still do not work after reinstalling openssh-client"
  fi
  command -v chromium >/dev/null 2>&1 || die "chromium is still missing after installing it"
  [ -n "$(pgbin)" ] && [ -x "$(pgbin)/initdb" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin after installing postgresql"
  say "prerequisites: $(curl --version | head -n 1 | cut -d' ' -f1-2), $(ssh -V 2>&1), $(rclone version 2>/dev/null | head -n 1), $(lftp --version | head -n 1 | cut -d' ' -f1-4), $(chromium --version 2>/dev/null | cut -d' ' -f1-2), PostgreSQL $(basename "$(dirname "$(pgbin)")")"
}

# Go tools (staticcheck, gosec, Mailpit) are built once per version into a
# cache outside the clone: go_tool_bin NAME MODULE VERSION KEY prints the
# binary's path on stdout, everything else on stderr. KEY names the cache
# folder (the Go version too for linters, whose results depend on it).
tools="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/ferry-tools"
go_tool_bin() {
  local name=$1 module=$2 version=$3 dir="$tools/$4"
  if [ ! -x "$dir/$name" ]; then
    say "building $name $version into $dir (once)" >&2
    local tmp
    mkdir -p "$tools"
    tmp=$(mktemp -d "$tools/.build.XXXXXX")
    GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "$module@$version" >&2 || {
      rm -rf "$tmp"
      return 1
    }
    mkdir -p "$dir"
    mv -f "$tmp/$name" "$dir/$name"
    rm -rf "$tmp"
  fi
  echo "$dir/$name"
}
staticcheck_bin() { go_tool_bin staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION" "staticcheck-$STATICCHECK_VERSION-$(go env GOVERSION)"; }
gosec_bin() { go_tool_bin gosec github.com/securego/gosec/v2/cmd/gosec "$GOSEC_VERSION" "gosec-$GOSEC_VERSION-$(go env GOVERSION)"; }
mailpit_bin() { go_tool_bin mailpit github.com/axllent/mailpit "$MAILPIT_VERSION" "mailpit-$MAILPIT_VERSION"; }

install_mailpit() {
  FERRY_MAILPIT=$(mailpit_bin) || return 1
  export FERRY_MAILPIT
  "$FERRY_MAILPIT" version 2>/dev/null | head -n 1 || true
}

# ---------------------------------------------------------------- checks

go_files() {
  find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -not -path './vendor/*' -not -path './bin/*' -print
}

check_gofmt() {
  local out
  out=$(go_files | xargs -r gofmt -l) || return 1
  if [ -n "$out" ]; then
    echo "gofmt: these files are not formatted (run make fmt):"
    printf '  %s\n' $out
    return 1
  fi
}

check_staticcheck() {
  local bin
  bin=$(staticcheck_bin) || return 1
  "$bin" -version
  "$bin" ./...
}

# gosec over the module (the bench tools excluded: load generators, not the
# server). Each excluded rule, and why it does not apply to Ferry:
#   G101 hard-coded credentials: fires on SQL text naming token/secret columns;
#        Ferry has no credentials in code (keys live in DIR/keys, TestNoKeyMaterialOutsideKeys).
#   G104 unchecked errors: deferred Close and best-effort writes to a client
#        that went away; errors that matter are returned (STYLE.md, staticcheck).
#   G117 secret in marshalled struct: the CLI sends a share's password to the
#        server, which is its purpose.
#   G118 context.Background in a goroutine: the audit log's and mail's
#        background workers outlive requests by design.
#   G203 unescaped template types: template.URL only for server-built query
#        strings and auth's own QR data: URL (reviewed: web_mfa.go, admin_audit.go, admin_impact.go).
#   G204 subprocess with variable: only test helpers (ferrytest) start
#        processes; the server links no os/exec (internal/fence).
#   G301/G302 permissions: the data directory's files are 0600/0700; the
#        flagged ones are the public certificate, the audit checkpoint
#        directory and files the CLI writes for its own user.
#   G304/G703 file path from a variable: paths come from the operator's
#        configuration or are blob ids inside os.Root; no user-supplied name
#        reaches the file system (TestUploadToExecute, FuzzBlobID, TestRootRefusesEscapes).
#   G404 math/rand: retry jitter and test data, never secrets.
#   G407 hard-coded nonce: a false positive on cipher.NewGCMWithRandomNonce,
#        whose Seal takes a nil nonce and draws its own (internal/keys).
#   G705 XSS via ResponseWriter.Write: JSON and embedded static files with an
#        explicit Content-Type and nosniff (TestUploadToExecute checks the headers).
#   G710 open redirect: every redirect target is a server-built path or
#        passes safeNext (local paths only).
check_gosec() {
  local bin
  bin=$(gosec_bin) || return 1
  "$bin" -version | head -n 1
  "$bin" -quiet -exclude-dir=bench -exclude=G101,G104,G117,G118,G203,G204,G301,G302,G304,G404,G407,G703,G705,G710 ./...
}

check_tidy() {
  if ! go mod tidy -diff; then
    echo "go.mod/go.sum are not tidy: run go mod tidy"
    return 1
  fi
}

# ---------------------------------------------------------------- PostgreSQL

tmp=
pg_dir=
test_pid=
cleanup() {
  local rc=$?
  if [ -n "$test_pid" ] && kill -0 "$test_pid" 2>/dev/null; then
    echo "test.sh: stopping go test (process group $test_pid)" >&2
    kill -TERM -- "-$test_pid" 2>/dev/null || true
    wait "$test_pid" 2>/dev/null || true
  fi
  if [ -n "$pg_dir" ]; then
    # Quiet on success, so that go test's closing lines stay the last ones.
    "$root/scripts/postgres.sh" stop "$pg_dir" || echo "test.sh: stopping PostgreSQL failed" >&2
  fi
  [ -z "$tmp" ] || rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_postgres() {
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-test.XXXXXX")
  chmod 755 "$tmp" # the postgres user must reach $tmp/pg
  local port dsn
  for port in 55432 $(shuf -i 55433-56431 -n 20); do
    port_free "$port" || continue
    pg_dir="$tmp/pg"
    if dsn=$("$root/scripts/postgres.sh" start "$pg_dir" "$port"); then
      export FERRY_TEST_POSTGRES="$dsn"
      say "PostgreSQL running at $dsn (data in $pg_dir)"
      return 0
    fi
    "$root/scripts/postgres.sh" stop "$pg_dir" || true
    pg_dir=
  done
  echo "test.sh: could not start PostgreSQL on any port" >&2
  return 1
}

# ---------------------------------------------------------------- run

step prerequisites install_prereqs
if [ "$mode" != lint ]; then step mailpit install_mailpit; fi
[ ${#failed[@]} -eq 0 ] || die "prerequisites missing"

step "gofmt -l" check_gofmt
step "go vet ./..." go vet ./...
step "staticcheck ./..." check_staticcheck
step "gosec ./..." check_gosec
step "go mod tidy -diff" check_tidy

if [ "$mode" = lint ]; then
  if [ ${#failed[@]} -gt 0 ]; then die "FAILED after $((SECONDS - start_all))s: $(join "${failed[@]}")"; fi
  say "lint passed in $((SECONDS - start_all))s"
  exit 0
fi

start_postgres || die "could not start PostgreSQL"
# The browser tests save screenshots of the main pages here (README shows
# them).
export FERRY_SCREENSHOTS="$root/docs/screenshots"
if [ "$mode" = full ]; then
  testargs=(-race -count=1 -timeout "$GO_TEST_TIMEOUT")
else
  testargs=(-short -count=1 -timeout "$GO_TEST_TIMEOUT")
fi
if [ ${#failed[@]} -gt 0 ]; then
  say "checks FAILED: ${failed[*]}; running the tests anyway"
else
  say "checks passed in $((SECONDS - start_all))s"
fi
# CI is passed through: under CI, tests that lack something fail instead of
# skipping. On success nothing is printed after go test, so its closing
# ok lines are the last lines of the run.
say "go test ${testargs[*]} $PKGS"
t=$SECONDS
test_rc=0
# In the background and in its own process group, so that a TERM or INT to
# this script is handled at once: the trap stops go test and the test
# binaries it started, then PostgreSQL.
setsid -w go test "${testargs[@]}" $PKGS &
test_pid=$!
wait "$test_pid" || test_rc=$?
test_pid=
if [ $test_rc -ne 0 ]; then failed+=("go test (exit $test_rc after $((SECONDS - t))s)"); fi
if [ ${#failed[@]} -gt 0 ]; then
  die "FAILED after $((SECONDS - start_all))s: $(join "${failed[@]}")"
fi
