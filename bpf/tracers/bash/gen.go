package bash

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type bash_event -output-stem bash bpf bash.c -- -I../../headers -I../common
