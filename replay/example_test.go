package replay_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ebpfrec/ebpfrec/bpf"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/all"
	"github.com/ebpfrec/ebpfrec/replay"
)

// Replay a recording into the handlers that ran live: here a ring buffer
// handler for the exec stream and one perf buffer handler for every perf
// stream.
func Example() {
	dir := filepath.Join("..", "fixtures", "demo")
	if _, err := os.Stat(dir); err != nil {
		fmt.Println("no fixture")
		return
	}
	r, err := replay.Open(dir, replay.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	var execEvents, perfEvents int
	r.HandleRingbuf("exec", func(_ context.Context, evs []bpf.RingbufEvent) error {
		execEvents += len(evs) // evs and their Raw bytes are valid during the call only
		return nil
	})
	r.HandlePerfbuf("", func(_ context.Context, evs []bpf.PerfbufEvent) error {
		perfEvents += len(evs)
		return nil
	})
	st, err := r.Run(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(execEvents == int(st.Streams["exec"].Events), perfEvents == int(st.Streams["exit"].Events))
	// Output: true true
}

// Replay a recording through the built-in tracers' decoders.
func ExampleReplayer_HandleDecoded() {
	dir := filepath.Join("..", "fixtures", "demo")
	if _, err := os.Stat(dir); err != nil {
		fmt.Println("no fixture")
		return
	}
	r, err := replay.Open(dir, replay.Options{Streams: []string{"exit"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	killed := 0
	r.HandleDecoded(func(d *replay.Decoded) error {
		if d.Event != nil && string(d.Event.AppendText(nil))[:9] == "signal=9 " {
			killed++
		}
		return nil
	})
	if _, err := r.Run(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("killed by SIGKILL:", killed)
	// Output: killed by SIGKILL: 1
}
