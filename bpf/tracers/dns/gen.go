package dns

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type dns_event -output-stem dns bpf dns.c -- -I../../headers -I../common
