package open

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type open_event -output-stem open bpf open.c -- -I../../headers -I../common
