# ebpfrec build, test and benchmark entry points. `make help` lists them.
GO        ?= go
PKGS      ?= ./...
BIN       ?= bin/ebpfrec
QUERY_BIN ?= bin/ebpfrec-query
# make install puts both commands into $(DESTDIR)$(PREFIX)/bin.
PREFIX    ?= /usr/local
DESTDIR   ?=
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# Each fuzz target runs this long in `make fuzz`.
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
BENCHCOUNT ?= 1

.PHONY: all build build-recorder build-query install test test-short test-kernels generate bench lint fuzz demo clean help env

all: build

help:
	@echo "make demo      record a short built-in workload, replay, export and query it (root)"
	@echo "make build     build $(BIN) (the recorder: Go only, no cgo) and $(QUERY_BIN) (DuckDB and the Arrow export: cgo, C++)"
	@echo "make install   build, then install both into $(DESTDIR)$(PREFIX)/bin"
	@echo "make test      run every test (root runs the kernel tests too)"
	@echo "make test-kernels  run the tests on this kernel and in VMs of Debian's 5.10, 6.1, 6.12 (root, qemu)"
	@echo "make generate  rebuild BPF objects with clang (bpf2go), vmlinux.h from this kernel"
	@echo "make bench     run the benchmarks and print their figures (the recorder's footprint too)"
	@echo "make lint      gofmt, go vet, staticcheck"
	@echo "make fuzz      run every fuzz target for FUZZTIME ($(FUZZTIME))"

build: build-recorder build-query

# The recorder links no cgo: built without it, it needs no C toolchain and
# no C library at run time. `ebpfrec query` and `ebpfrec export --format
# arrow` run ebpfrec-query, which links DuckDB (cgo and a C++ toolchain)
# and the Arrow writer, from the same folder: install both.
build-recorder:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/ebpfrec

build-query:
	CGO_ENABLED=1 $(GO) build -ldflags "$(LDFLAGS)" -o $(QUERY_BIN) ./cmd/ebpfrec-query

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(QUERY_BIN) $(DESTDIR)$(PREFIX)/bin/

# Kernel tests need tracefs and bpffs; scripts/mounts.sh mounts them when run
# as root and is a no-op otherwise (those tests then skip and say why).
test:
	@scripts/mounts.sh
	$(GO) test -count=1 -timeout 20m $(PKGS)

# The kernel matrix: the tests of every package on this host's kernel and in
# qemu VMs booting Debian's 5.10, 6.1 and 6.12 kernels; prints kernel x
# package. KERNELS="6.1" picks some; scripts/kernels/run.sh says more.
KERNELS ?=
test-kernels:
	@scripts/kernels/run.sh $(KERNELS)

test-short:
	$(GO) test -count=1 -short $(PKGS)

bpf/headers/vmlinux.h:
	@mkdir -p $(@D)
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@

generate: bpf/headers/vmlinux.h
	$(GO) generate ./bpf/...

bench:
	@scripts/mounts.sh
	@scripts/bench.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@# arm64: every package but those whose code or tests link DuckDB
	@# through cgo (which needs an arm64 C toolchain to type-check):
	@# analyze/query, cmd/ebpfrec-query, and analyze, whose tests query.
	GOARCH=arm64 $(GO) vet $$($(GO) list $(PKGS) | grep -v -x -e '.*/analyze' -e '.*/analyze/query' -e '.*/cmd/ebpfrec-query')
	$(GO) tool staticcheck $(PKGS)

fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

# Record, replay, export and query a short built-in workload (needs root).
demo:
	@scripts/demo.sh

clean:
	rm -rf bin
