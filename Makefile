# lbc — see README.md. The two commands that matter: `make demo`, `make test`.
GO      ?= go
PKGS    := haproxy openssh-server openssh-client iproute2 keepalived socat netcat-openbsd util-linux procps git shellcheck
BENCH_PKGS := ansible-core time

.PHONY: all deps bench-deps build test demo bench gen vet vulncheck clean

all: build

# deps installs the Debian packages the tests and the demo need, only when
# one is missing (needs root; a no-op on a machine that has them all).
deps:
	@missing=$$(for p in $(PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

bench-deps: deps
	@missing=$$(for p in $(BENCH_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

build:
	$(GO) build -o bin/lbc ./cmd/lbc

vet:
	$(GO) vet ./...

test: deps
	$(GO) vet ./...
	$(GO) run ./internal/vulncheck
	$(GO) test -timeout 40m ./...

# vulncheck runs govulncheck with the Go vulnerability database taken from
# the module proxy (the module golang.org/x/vulndb), not from its web site;
# see internal/vulncheck. It fails on a called vulnerable symbol of a
# required module, warns on one of the standard library (upgrade Go).
vulncheck:
	$(GO) run ./internal/vulncheck

demo: deps build
	bash demo/demo.sh

bench: bench-deps build
	bash bench/bench.sh

gen:
	$(GO) run ./internal/testkit/gen -out testdata/gen

clean:
	rm -rf bin out
