// Package testdata holds the BPF program that package bpf's tests load on the
// real kernel, compiled by bpf2go. Run `make generate` to rebuild it.
package testdata

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type test_event -output-stem testprog Testprog testprog.c -- -I../headers
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -output-stem tracing Tracing tracing.c -- -I../headers
