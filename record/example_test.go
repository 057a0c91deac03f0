package record_test

import (
	"context"
	"os"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/testdata"
	"github.com/ebpfrec/ebpfrec/record"
)

// Example_userCollection records a program of your own (from bpf2go) with
// your own live handler beside the recording.
func Example_userCollection() {
	// Loading BPF programs needs root (or CAP_BPF and CAP_PERFMON).
	spec, err := testdata.LoadTestprog() // your bpf2go loadXxx()
	if err != nil {
		panic(err)
	}
	_ = spec.Variables["target_tgid"].Set(uint32(os.Getpid()))
	rec, err := record.New(record.Options{Dir: "my-recording", Duration: 10 * time.Second})
	if err != nil {
		panic(err)
	}
	err = rec.AddCollection(record.Collection{
		Name:   "mine",
		Spec:   spec,
		Attach: []record.Attachment{{Kind: "tracepoint", Target: "syscalls/sys_enter_getppid", Program: "rb_getppid"}},
		// The stream is named after its map ("events_rb"; with several
		// collections, "mine/events_rb"): replay's handlers take that name.
		Streams: []record.Stream{{Map: "events_rb", Handler: func(ctx context.Context, events []bpf.RingbufEvent) error {
			// Live processing; the batch is already recorded.
			return nil
		}}},
	})
	if err != nil {
		panic(err)
	}
	if _, err := rec.Run(context.Background()); err != nil {
		panic(err)
	}
}
