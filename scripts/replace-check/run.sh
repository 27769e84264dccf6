#!/usr/bin/env bash
# Checks, offline, which go.mod "replace" forms make the import path
# github.com/soheilhy/cmux resolve to this module (github.com/cmux-go/cmux).
#
# It publishes the committed tree (REV, default HEAD) as github.com/cmux-go/cmux@v0.2.0
# in a file-based GOPROXY in a temp dir, plus example.com/dep (a stand-in for etcd: it
# imports github.com/soheilhy/cmux) and a shim module github.com/cmux-go/cmux/soheilhy
# whose go.mod says "module github.com/soheilhy/cmux". Then it builds consumer modules
# with each replace form. Other modules (golang.org/x/net, ...) come from the local
# module cache, so nothing is downloaded. Exit status 1 if a form that should work doesn't.
#
# Usage: scripts/replace-check/run.sh [-k]     (-k keeps the temp dir)
set -euo pipefail

keep=0; [[ ${1:-} == -k ]] && keep=1
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
rev=${REV:-HEAD}
V=v0.2.0
tmp=$(mktemp -d /tmp/replace-check.XXXXXX)
[[ $keep == 1 ]] && echo "temp dir: $tmp" || trap 'rm -rf "$tmp"' EXIT

cache=$(go env GOMODCACHE)/cache/download
export GOPROXY="file://$tmp/proxy,file://$cache" GOSUMDB=off GONOSUMDB= GOPRIVATE= GONOPROXY=
export GOMODCACHE="$tmp/modcache" GOFLAGS=-modcacherw GOTOOLCHAIN=local GOWORK=off
export GIT_CONFIG_NOSYSTEM=1

info() { printf '{"Version":"%s","Time":"2025-01-01T00:00:00Z"}\n' "$1"; }

# publish MODPATH VERSION SRCDIR: write .info/.mod/.zip/list under the proxy.
publish() {
	local mp=$1 v=$2 src=$3 d="$tmp/proxy/$1/@v" z="$tmp/zip.$RANDOM"
	mkdir -p "$d" "$z/$mp@$v"
	cp -R "$src"/. "$z/$mp@$v/"
	(cd "$z" && zip -qrD "$d/$v.zip" .)
	cp "$src/go.mod" "$d/$v.mod"; info "$v" >"$d/$v.info"; echo "$v" >>"$d/list"
	rm -rf "$z"
}

# 1. github.com/cmux-go/cmux@v0.2.0 from git, without nested modules (dirs with a go.mod).
mkdir -p "$tmp/checkout/cmux"
excl=(); while read -r m; do excl+=(":(exclude)$(dirname "$m")"); done \
	< <(git -C "$repo" ls-tree -r --name-only "$rev" | grep '/go\.mod$')
git -C "$repo" archive "$rev" -- . "${excl[@]}" | tar -x -C "$tmp/checkout/cmux"
publish github.com/cmux-go/cmux $V "$tmp/checkout/cmux"

# 2. example.com/dep v1.0.0: imports github.com/soheilhy/cmux, as go.etcd.io/etcd/server/v3 does.
mkdir -p "$tmp/src/dep"
cat >"$tmp/src/dep/go.mod" <<'EOF'
module example.com/dep

go 1.22

require github.com/soheilhy/cmux v0.1.5
EOF
cat >"$tmp/src/dep/dep.go" <<'EOF'
package dep

import (
	"net"

	"github.com/soheilhy/cmux"
)

func Mux(l net.Listener) cmux.CMux { return cmux.New(l) }
EOF
publish example.com/dep v1.0.0 "$tmp/src/dep"

# 3. The shim: module github.com/soheilhy/cmux, published as github.com/cmux-go/cmux/soheilhy
#    (what a nested module at /soheilhy tagged soheilhy/v0.2.0 would be).
mkdir -p "$tmp/src/shim"
cat >"$tmp/src/shim/go.mod" <<EOF
module github.com/soheilhy/cmux

go 1.22.0

require github.com/cmux-go/cmux $V
EOF
cat >"$tmp/src/shim/cmux.go" <<'EOF'
// Package cmux is github.com/soheilhy/cmux v0.1.5's API on top of github.com/cmux-go/cmux.
package cmux

import (
	"net"

	impl "github.com/cmux-go/cmux"
)

type (
	Matcher       = impl.Matcher
	MatchWriter   = impl.MatchWriter
	ErrorHandler  = impl.ErrorHandler
	CMux          = impl.CMux
	ErrNotMatched = impl.ErrNotMatched
	MuxConn       = impl.MuxConn
)

var (
	ErrListenerClosed = impl.ErrListenerClosed
	ErrServerClosed   = impl.ErrServerClosed
)

func New(l net.Listener) CMux                { return impl.New(l) }
func Any() Matcher                           { return impl.Any() }
func PrefixMatcher(strs ...string) Matcher   { return impl.PrefixMatcher(strs...) }
func HTTP1Fast(extMethods ...string) Matcher { return impl.HTTP1Fast(extMethods...) }
func TLS(versions ...int) Matcher            { return impl.TLS(versions...) }
func HTTP1() Matcher                         { return impl.HTTP1() }
func HTTP2() Matcher                         { return impl.HTTP2() }
func HTTP1HeaderField(name, value string) Matcher {
	return impl.HTTP1HeaderField(name, value)
}
func HTTP1HeaderFieldPrefix(name, valuePrefix string) Matcher {
	return impl.HTTP1HeaderFieldPrefix(name, valuePrefix)
}
func HTTP2HeaderField(name, value string) Matcher {
	return impl.HTTP2HeaderField(name, value)
}
func HTTP2HeaderFieldPrefix(name, valuePrefix string) Matcher {
	return impl.HTTP2HeaderFieldPrefix(name, valuePrefix)
}
func HTTP2MatchHeaderFieldSendSettings(name, value string) MatchWriter {
	return impl.HTTP2MatchHeaderFieldSendSettings(name, value)
}
func HTTP2MatchHeaderFieldPrefixSendSettings(name, valuePrefix string) MatchWriter {
	return impl.HTTP2MatchHeaderFieldPrefixSendSettings(name, valuePrefix)
}
EOF
publish github.com/cmux-go/cmux/soheilhy $V "$tmp/src/shim"

# consumer NAME KIND: a fresh module. KIND=direct imports github.com/soheilhy/cmux itself and
# calls cmux.NewWithOptions/cmux.MatchTimeout through it (compiles only against our code);
# KIND=dep gets it through example.com/dep only; KIND=mixed also imports github.com/cmux-go/cmux.
consumer() {
	local d="$tmp/c/$1"; mkdir -p "$d"
	case $2 in
	direct) printf 'module example.com/consumer\n\ngo 1.22\n\nrequire github.com/soheilhy/cmux v0.1.5\n' >"$d/go.mod"
		cat >"$d/main.go" <<'EOF'
package main

import (
	"fmt"
	"net"
	"time"

	"github.com/soheilhy/cmux"
)

func main() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	m := cmux.NewWithOptions(l, cmux.MatchTimeout(time.Second)) // not in soheilhy/cmux v0.1.5
	_ = m.Match(cmux.Any())
	l.Close()
	fmt.Println("ran github.com/cmux-go/cmux code via import github.com/soheilhy/cmux")
}
EOF
		;;
	dep | mixed) printf 'module example.com/consumer\n\ngo 1.22\n\nrequire example.com/dep v1.0.0\n' >"$d/go.mod"
		cat >"$d/main.go" <<'EOF'
package main

import (
	"fmt"
	"net"

	"example.com/dep"
)

func main() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	_ = dep.Mux(l)
	l.Close()
	fmt.Println("ok")
}
EOF
		if [[ $2 == mixed ]]; then
			printf 'package main\n\nimport "github.com/cmux-go/cmux"\n\nvar _ = cmux.NewWithOptions\n' >"$d/own.go"
			(cd "$d" && go mod edit -require=github.com/cmux-go/cmux@$V)
		fi
		;;
	esac
	echo "$d"
}

fail=0
# step NAME EXPECT(ok|fail) CMD...: run CMD in the current consumer, show its output.
step() {
	local name=$1 want=$2; shift 2
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	local got=ok; [[ $rc != 0 ]] && got=fail
	local mark=PASS; [[ $got != "$want" && $want != any ]] && { mark=UNEXPECTED; fail=1; }
	printf '  %-10s %-4s %-52s %s\n' "$mark" "$got" "$name" ""
	[[ -n $out ]] && sed 's/^/      | /' <<<"$out" | grep -v '^      | go: downloading' || true
}
uses_ours() { # the module providing github.com/soheilhy/cmux must be ours (or the shim)
	local r; r=$(go list -m -f '{{with .Replace}}{{.Path}} {{.Version}}{{end}}' github.com/soheilhy/cmux)
	go list -m github.com/soheilhy/cmux
	[[ $r == "github.com/cmux-go/cmux $V" || $r == "github.com/cmux-go/cmux/soheilhy $V" || $r == "$tmp/checkout/cmux " ]]
}

# Does the root package's test code import the module's own path? Then "go mod tidy" in a
# consumer that replaces soheilhy/cmux with our module version fails (see README.md).
selfimp=$(cd "$tmp/checkout/cmux" && grep -l '"github.com/cmux-go/cmux[/"]' ./*_test.go 2>/dev/null || true)
tidy_a=ok; [[ -n $selfimp ]] && tidy_a=fail
# Does the root package import the module's own internal packages? Then nothing loaded
# as github.com/soheilhy/cmux builds: Go allows internal/ imports only under the
# module's own path. Only the shim (d) works.
intimp=$(cd "$tmp/checkout/cmux" && ls ./*.go | grep -v '_test.go$' | xargs grep -l '"github.com/cmux-go/cmux/internal/' 2>/dev/null || true)
build=ok; [[ -n $intimp ]] && { build=fail; tidy_a=fail; }
tidy_c=ok; [[ -n $intimp ]] && tidy_c=fail

echo "== (a) go mod edit -replace github.com/soheilhy/cmux=github.com/cmux-go/cmux@$V  (direct import)"
cd "$(consumer a direct)"
step "go mod edit -replace ...=github.com/cmux-go/cmux@$V" ok go mod edit -replace github.com/soheilhy/cmux=github.com/cmux-go/cmux@$V
step "go get github.com/soheilhy/cmux" any go get github.com/soheilhy/cmux
step "go run . (calls cmux.NewWithOptions)" $build go run .
step "go list -m: replacement is ours" any uses_ours
step "go mod tidy${selfimp:+ (root tests import own path: $(echo $selfimp | tr '\n' ' '))}" $tidy_a go mod tidy

echo "== (a') same, module reached only through a dependency (the etcd case)"
cd "$(consumer a2 dep)"
step "go mod edit -replace ...=github.com/cmux-go/cmux@$V" ok go mod edit -replace github.com/soheilhy/cmux=github.com/cmux-go/cmux@$V
step "go get github.com/soheilhy/cmux" any go get github.com/soheilhy/cmux
step "go get example.com/dep@v1.0.0 (the project's own go.sum)" any go get example.com/dep@v1.0.0
step "go build ." $build go build -o /dev/null .
step "go list -m: replacement is ours" any uses_ours
step "go mod tidy" $tidy_a go mod tidy
if [[ $tidy_a == fail && -z $intimp ]]; then
	step "go mod tidy -e" ok go mod tidy -e
	step "go build . after tidy -e (it added cmux-go/cmux)" fail go build -o /dev/null .
fi

echo "== (b) replace github.com/soheilhy/cmux v0.1.5 => github.com/cmux-go/cmux $V"
cd "$(consumer b dep)"
step "go mod edit -replace ...@v0.1.5=...@$V" ok go mod edit -replace github.com/soheilhy/cmux@v0.1.5=github.com/cmux-go/cmux@$V
step "go get example.com/dep@v1.0.0" any go get example.com/dep@v1.0.0
step "go build ." $build go build -o /dev/null .
step "go list -m: replacement is ours" any uses_ours

echo "== (c) replace github.com/soheilhy/cmux => <directory>"
cd "$(consumer c dep)"
step "go mod edit -replace ...=$tmp/checkout/cmux" ok go mod edit -replace github.com/soheilhy/cmux="$tmp/checkout/cmux"
step "go mod tidy" any go mod tidy
step "go build ." $build go build -o /dev/null .
step "go list -m: replacement is ours" any uses_ours

echo "== (d) shim: replace github.com/soheilhy/cmux => github.com/cmux-go/cmux/soheilhy $V"
cd "$(consumer d mixed)"
step "go mod edit -replace ...=github.com/cmux-go/cmux/soheilhy@$V" ok go mod edit -replace github.com/soheilhy/cmux=github.com/cmux-go/cmux/soheilhy@$V
step "go mod tidy (own code also imports cmux-go/cmux)" ok go mod tidy
step "go build ." ok go build -o /dev/null .
step "go list -m: replacement is ours" ok uses_ours

echo "== (e) failing forms, for the record"
cd "$(consumer e1 mixed)"
go mod edit -replace github.com/soheilhy/cmux=github.com/cmux-go/cmux@$V
step "go get example.com/dep@v1.0.0" any go get example.com/dep@v1.0.0
step "(a) + own import of cmux-go/cmux at the same version" fail go build -o /dev/null .
cd "$(consumer e2 dep)"
step "go mod edit -replace ...=github.com/cmux-go/cmux (no version)" fail go mod edit -replace github.com/soheilhy/cmux=github.com/cmux-go/cmux

echo
[[ $fail == 0 ]] && echo "all results as expected" || echo "UNEXPECTED results above"
exit $fail
