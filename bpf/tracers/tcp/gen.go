package tcp

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type tcp_event -output-stem tcp bpf tcp.c -- -I../../headers -I../common
