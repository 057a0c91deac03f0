package exec

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type exec_event -output-stem exec bpf exec.c -- -I../../headers -I../common
