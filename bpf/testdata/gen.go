// Package testdata holds the BPF programs that the tests load on the real
// kernel, compiled by bpf2go: testprog and tracing for package bpf, and
// filtered, a user object that opts into ebpfrec's process filter
// (bpf/include/ebpfrec_filter.h), for package record and the command line;
// missed, a program the kernel skips at each getpid of a thread (record's
// tests of recursion misses).
// It also holds gotarget, a Go program that the uprobe tests inspect and
// probe (see GoTarget). Run `make generate` to rebuild them.
package testdata

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type test_event -output-stem testprog Testprog testprog.c -- -I../headers
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -output-stem tracing Tracing tracing.c -- -I../headers
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -output-stem gofunc Gofunc gofunc.c -- -I../headers
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type filtered_event -output-stem filtered Filtered filtered.c -- -I../headers -I../include
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -output-stem missed Missed missed.c -- -I../headers

// gotarget, the Go program the uprobe tests inspect and probe, prebuilt for
// the kernel matrix's VMs, which have no Go toolchain (see GoTarget).
// amd64 in full and stripped; arm64 without DWARF, for its return
// instructions.
//go:generate sh -c "CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -o gotarget/gotarget.amd64 ./gotarget && gzip -9nf gotarget/gotarget.amd64 && chmod 644 gotarget/gotarget.amd64.gz"
//go:generate sh -c "CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags='-s -w' -o gotarget/gotarget-stripped.amd64 ./gotarget && gzip -9nf gotarget/gotarget-stripped.amd64 && chmod 644 gotarget/gotarget-stripped.amd64.gz"
//go:generate sh -c "CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -ldflags=-w -o gotarget/gotarget.arm64 ./gotarget && gzip -9nf gotarget/gotarget.arm64 && chmod 644 gotarget/gotarget.arm64.gz"
