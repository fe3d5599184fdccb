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
GOOS=js GOARCH=wasm go build ./protocol/...

say "go test -race"
go test -race -count=1 ./...

say "fuzz every decoder for $FUZZTIME"
for pkg in $(go list ./...); do
  for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    go test -run '^$' -fuzz "^${f}\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/sandi-fuzz.$$ 2>&1 \
      || { cat /tmp/sandi-fuzz.$$; die "fuzz target $f in $pkg failed"; }
    echo "ok   fuzz $pkg $f"
  done
done
rm -f /tmp/sandi-fuzz.$$

say "all tests passed"
