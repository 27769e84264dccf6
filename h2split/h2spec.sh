#!/usr/bin/env bash
# Installs h2spec (the version TestH2spec pins) if missing, and runs its
# server conformance tests (HTTP/2, HPACK, generic; --strict) against the
# splitter's client-facing side, with grpc-go and net/http behind it:
#
#   h2split/h2spec.sh [-v]
set -euo pipefail
cd "$(dirname "$0")"
version=$(sed -n 's/^const h2specVersion = "\(.*\)"$/\1/p' h2spec_test.go)
if ! command -v h2spec >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/h2spec" ]; then
  echo "installing $version"
  GOFLAGS= go install "$version"
fi
export H2SPEC=${H2SPEC:-$(command -v h2spec || echo "$(go env GOPATH)/bin/h2spec")}
GOWORK=off go test -count=1 -run '^TestH2spec$' -v "$@" . | grep -E 'h2spec|^(---|ok|FAIL|PASS)'
