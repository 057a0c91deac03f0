package exit

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type exit_event -output-stem exit bpf exit.c -- -I../../headers -I../common
