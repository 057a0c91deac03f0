package proc

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type proc_head -type proc_exec_event -output-stem proc bpf proc.c -- -I../../headers -I../common
