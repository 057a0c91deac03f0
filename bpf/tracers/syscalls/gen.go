package syscalls

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type sys_event -output-stem syscalls bpf syscalls.c -- -I../../headers -I../common
