// Package testdata holds kinds, the BPF object of package btflayout's tests
// (a struct with a member of every kind), compiled by bpf2go for amd64 and
// arm64. Run `make generate` to rebuild it.
package testdata

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -output-stem kinds Kinds kinds.c -- -I../../headers
