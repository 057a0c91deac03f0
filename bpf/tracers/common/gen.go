package common

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type comm_key -type exec_key -output-stem follow follow follow.c -- -I../../headers -I.
