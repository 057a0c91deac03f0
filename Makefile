# ebpfrec build, test and benchmark entry points. `make help` lists them.
GO        ?= go
PKGS      ?= ./...
BIN       ?= bin/ebpfrec
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# Each fuzz target runs this long in `make fuzz`.
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
BENCHCOUNT ?= 1

.PHONY: all build test test-short test-kernels generate bench lint fuzz demo clean help env

all: build

help:
	@echo "make demo      record a short built-in workload, replay, export and query it (root)"
	@echo "make build     build $(BIN)"
	@echo "make test      run every test (root runs the kernel tests too)"
	@echo "make test-kernels  run the tests on this kernel and in VMs of Debian's 5.10, 6.1, 6.12 (root, qemu)"
	@echo "make generate  rebuild BPF objects with clang (bpf2go), vmlinux.h from this kernel"
	@echo "make bench     run the benchmarks and print their figures"
	@echo "make lint      gofmt, go vet, staticcheck"
	@echo "make fuzz      run every fuzz target for FUZZTIME ($(FUZZTIME))"

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/ebpfrec

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
	@# arm64: every package but those that link DuckDB through cgo (which
	@# needs an arm64 C toolchain to type-check).
	GOARCH=arm64 $(GO) vet $$($(GO) list $(PKGS) | grep -v -e /analyze -e /cmd/ebpfrec)
	$(GO) tool staticcheck $(PKGS)

fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

# Record, replay, export and query a short built-in workload (needs root).
demo:
	@scripts/demo.sh

clean:
	rm -rf bin
