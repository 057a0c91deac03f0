package exit

// Two builds of exit.c: the default for kernels whose sched_process_exit
// tracepoint passes group_dead, and exit_live for older ones (see Variants).
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type exit_event -output-stem exit bpf exit.c -- -I../../headers -I../common
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -output-stem exit_live bpfLive exit.c -- -I../../headers -I../common -DEXIT_NO_GROUP_DEAD
