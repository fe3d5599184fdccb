#!/usr/bin/env bash
# The whole test suite of sandi: what README.md calls the test command and
# what .ci/run runs. It installs what the tests need when it is missing
# (PostgreSQL, Chromium: Debian packages; needs root or sudo) and fails loudly
# when it cannot. It never skips a part silently.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go is not installed (need Go 1.26 or newer)"

FUZZTIME=${SANDI_FUZZTIME:-3s}

say "gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$bad" ] || die "not gofmt-formatted: $bad"

say "go vet"
go vet ./...

say "go mod tidy leaves no diff"
cp go.mod /tmp/sandi-go.mod.$$ && cp go.sum /tmp/sandi-go.sum.$$
go mod tidy
if ! cmp -s go.mod /tmp/sandi-go.mod.$$ || ! cmp -s go.sum /tmp/sandi-go.sum.$$; then
  cp /tmp/sandi-go.mod.$$ go.mod; cp /tmp/sandi-go.sum.$$ go.sum
  die "go mod tidy changes go.mod/go.sum: run it and commit"
fi
rm -f /tmp/sandi-go.mod.$$ /tmp/sandi-go.sum.$$

say "build for js/wasm"
GOOS=js GOARCH=wasm go build ./protocol/... ./client ./web/wasm
GOOS=js GOARCH=wasm go vet ./web/wasm ./client

say "PostgreSQL server for the store tests"
# internal/testpg starts a throwaway cluster from /usr/lib/postgresql/*/bin
# (unless SANDI_TEST_POSTGRES_URL names a server); the tests fail without it.
if [ -n "${SANDI_TEST_POSTGRES_URL:-}" ]; then
  echo "using SANDI_TEST_POSTGRES_URL"
elif compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
  echo "found $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
elif [ "$(id -u)" -eq 0 ]; then
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql \
    || die "could not install PostgreSQL with apt-get install -y postgresql"
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql \
    || die "could not install PostgreSQL with sudo apt-get install -y postgresql"
else
  die "PostgreSQL server binaries are missing under /usr/lib/postgresql/*/bin and this user can neither install them (not root, no sudo): run 'apt-get install -y postgresql' as root, or set SANDI_TEST_POSTGRES_URL to a server"
fi
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || [ -n "${SANDI_TEST_POSTGRES_URL:-}" ] \
  || die "apt-get installed postgresql but no server binaries are under /usr/lib/postgresql/*/bin"

say "Chromium for the web client's browser tests"
# web/browser_test.go drives /usr/bin/chromium (Debian's package; no
# browser is ever downloaded); the tests fail without it.
if [ -x /usr/bin/chromium ]; then
  /usr/bin/chromium --version 2>/dev/null | tail -n 1 || true
elif [ "$(id -u)" -eq 0 ]; then
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
    || die "could not install Chromium with apt-get install -y chromium"
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
    || die "could not install Chromium with sudo apt-get install -y chromium"
else
  die "Chromium is missing at /usr/bin/chromium and this user can neither install it (not root, no sudo): run 'apt-get install -y chromium' as root"
fi
[ -x /usr/bin/chromium ] || die "apt-get installed chromium but /usr/bin/chromium is not there"

say "script(1) for the CLI's terminal test"
# cmd/sandi/untrusted_cli_test.go runs sandi on a terminal through
# script(1) (Debian's bsdutils) and skips without it: require it here.
if ! command -v script >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y bsdutils \
      || die "could not install script(1) with apt-get install -y bsdutils"
  else
    die "script(1) is missing: run 'apt-get install -y bsdutils' as root"
  fi
fi
command -v script >/dev/null || die "apt-get installed bsdutils but script(1) is not on PATH"

say "S3-compatible server for the blob store tests"
# internal/tests3 starts a throwaway versitygw (a real S3 gateway over a
# directory, on loopback) from $SANDI_TEST_S3_BIN, unless SANDI_TEST_S3_URL
# names a server; the tests fail without it. It is built from the Go module
# proxy (about a minute, once) into the user's cache, outside go.mod: it is
# a test tool, not a dependency of sandi.
VERSITYGW=github.com/versity/versitygw/cmd/versitygw@v1.8.0
if [ -n "${SANDI_TEST_S3_URL:-}" ]; then
  echo "using SANDI_TEST_S3_URL"
else
  if [ -z "${SANDI_TEST_S3_BIN:-}" ]; then
    s3bin="${XDG_CACHE_HOME:-$HOME/.cache}/sandi/versitygw-v1.8.0"
    SANDI_TEST_S3_BIN=$s3bin/versitygw
    if [ ! -x "$SANDI_TEST_S3_BIN" ]; then
      echo "building $VERSITYGW into $s3bin"
      mkdir -p "$s3bin"
      GOBIN="$s3bin" go install "$VERSITYGW" \
        || die "could not build versitygw with: GOBIN=$s3bin go install $VERSITYGW (or set SANDI_TEST_S3_URL to an S3 server)"
    fi
  fi
  [ -x "$SANDI_TEST_S3_BIN" ] || die "SANDI_TEST_S3_BIN=$SANDI_TEST_S3_BIN is not an executable versitygw"
  export SANDI_TEST_S3_BIN
  echo "found $SANDI_TEST_S3_BIN"
fi

say "build the web client (go generate ./web)"
go generate ./web

say "go test -race"
go test -race -count=1 -timeout 30m ./...

# The client property test (client/property_test.go) runs a few sequences
# under the race detector above; here it runs its full count without it.
PROPERTY_SQLITE=${SANDI_PROPERTY_SEQUENCES:-200}
PROPERTY_PG=${SANDI_PROPERTY_PG_SEQUENCES:-50}
say "property test: $PROPERTY_SQLITE sequences on SQLite, $PROPERTY_PG on PostgreSQL"
SANDI_PROPERTY_SEQUENCES=$PROPERTY_SQLITE go test -count=1 -v -run '^TestProperty$/^sqlite$' ./client >/tmp/sandi-prop.$$ 2>&1 \
  || { cat /tmp/sandi-prop.$$; die "property test failed on SQLite"; }
grep -E 'sequences, [0-9]+ operations' /tmp/sandi-prop.$$ || die "property test printed no summary"
tail -n 1 /tmp/sandi-prop.$$
SANDI_PROPERTY_SEQUENCES=$PROPERTY_PG go test -count=1 -v -run '^TestProperty$/^postgres$' ./client >/tmp/sandi-prop.$$ 2>&1 \
  || { cat /tmp/sandi-prop.$$; die "property test failed on PostgreSQL"; }
grep -E 'sequences, [0-9]+ operations' /tmp/sandi-prop.$$ || die "property test printed no summary"
tail -n 1 /tmp/sandi-prop.$$
rm -f /tmp/sandi-prop.$$

# Each fuzz target runs for $FUZZTIME and must execute at least
# $FUZZ_MIN_EXECS inputs, or the suite fails naming it. A target that
# executes almost nothing is not fuzzing: its inputs are too large or too
# slow, or the engine spends its time minimizing them (the minimizer runs a
# number of executions quadratic in an input's length, for up to 60 s per
# input; FuzzParseBundle once executed 6 inputs in 30 s, then none). The
# count is the engine's own, from its last status line ("fuzz: elapsed: 3s,
# execs: N (R/sec), ..."). On this project's 2-core test machine, loaded by
# other suites to a load average of 18 to 20, the targets executed 267
# inputs (FuzzEpochDecrypt: an Ed25519 check per envelope) to 124,000 in
# 3 s (an idle machine runs about ten times as many). But a
# fresh run starts with a burst of new coverage, each input of which is
# minimized first, and on such a machine that burst alone can fill 3 s
# (FuzzOpenDistribution: 30 in one run, FuzzSyncAnswers: 26). So a target under the minimum runs once more,
# for $FUZZ_RETRY_TIME, starting from the corpus the first run cached; a
# stalled target stays under the minimum (FuzzParseBundle before it was
# fixed: 17 inputs in 3 s, then 9 in 10 s) and fails the suite. The minimum
# is meant for a -fuzztime of 3 s or more.
FUZZ_MIN_EXECS=${SANDI_FUZZ_MIN_EXECS:-200}
FUZZ_RETRY_TIME=${SANDI_FUZZ_RETRY_TIME:-10s}
say "fuzz every target for $FUZZTIME (each must execute at least $FUZZ_MIN_EXECS inputs)"
fuzz_run() { go test -run '^$' -fuzz "^${1}\$" -fuzztime "$3" "$2" >/tmp/sandi-fuzz.$$ 2>&1; }
fuzz_execs() { { grep -o 'execs: [0-9]*' /tmp/sandi-fuzz.$$ || true; } | tail -n 1 | tr -dc '0-9'; }
# fuzz_one runs target $1 of package $2 for $3 and fails the suite if it
# fails. Go 1.26's fuzzing engine can fail a target with a bare "context
# deadline exceeded" as the -fuzztime window closes, having found nothing
# (go.dev/issue/75804, fixed in Go 1.27). A real finding always writes its
# input to testdata/fuzz. Such a target runs once more; any other failure,
# or a second one, fails the suite.
fuzz_one() {
  fuzz_run "$@" && return 0
  if grep -q 'context deadline exceeded' /tmp/sandi-fuzz.$$ && ! grep -q 'Failing input written' /tmp/sandi-fuzz.$$; then
    echo "again fuzz $2 $1: the engine's deadline race (go.dev/issue/75804), no failing input"
    fuzz_run "$@" && return 0
  fi
  cat /tmp/sandi-fuzz.$$
  die "fuzz target $1 in $2 failed"
}
for pkg in $(go list ./...); do
  targets=$(go test -list '^Fuzz' "$pkg") || die "go test -list failed in $pkg: its fuzz targets cannot be listed"
  for f in $(printf '%s\n' "$targets" | grep '^Fuzz' || true); do
    fuzz_one "$f" "$pkg" "$FUZZTIME"
    n=$(fuzz_execs)
    if [ "${n:-0}" -lt "$FUZZ_MIN_EXECS" ]; then
      echo "again fuzz $pkg $f: ${n:-no} inputs in $FUZZTIME, under $FUZZ_MIN_EXECS; running $FUZZ_RETRY_TIME from the corpus it cached"
      fuzz_one "$f" "$pkg" "$FUZZ_RETRY_TIME"
      n=$(fuzz_execs)
      if [ "${n:-0}" -lt "$FUZZ_MIN_EXECS" ]; then
        cat /tmp/sandi-fuzz.$$
        die "fuzz target $f in $pkg executed ${n:-no} inputs in $FUZZ_RETRY_TIME, fewer than $FUZZ_MIN_EXECS: it is not fuzzing (too slow per input, inputs too large, or stuck minimizing; GODEBUG=fuzzdebug=1 shows which)"
      fi
    fi
    echo "ok   fuzz $pkg $f ($n inputs)"
  done
done
rm -f /tmp/sandi-fuzz.$$

say "all tests passed"
