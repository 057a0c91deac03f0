package replay

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/replay/replaytest"
	"github.com/ebpfrec/ebpfrec/store"
)

// collector replays into fingerprints, loss points included.
type collector struct {
	r   *Replayer
	mu  sync.Mutex
	fps []string
}

func (c *collector) add(fp string) {
	c.mu.Lock()
	c.fps = append(c.fps, fp)
	c.mu.Unlock()
}

// count returns the number of batch fingerprints so far.
func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(onlyBatches(c.fps))
}

// snapshot returns the fingerprints so far.
func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.fps...)
}

// newCollector opens dir and installs fingerprinting handlers for every
// stream; OnLoss is wrapped to record loss points.
func newCollector(t testing.TB, dir string, opts Options) *collector {
	t.Helper()
	c := &collector{}
	user := opts.OnLoss
	opts.OnLoss = func(p store.LossPoint) {
		c.add(fmt.Sprintf("LOSS %s %+v", p.Stream, p.Loss))
		if user != nil {
			user(p)
		}
	}
	r, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	c.r = r
	r.HandleRingbuf("", func(_ context.Context, evs []bpf.RingbufEvent) error {
		c.add(replaytest.FingerprintRing(r.Current().Stream, evs))
		return nil
	})
	r.HandlePerfbuf("", func(_ context.Context, evs []bpf.PerfbufEvent) error {
		c.add(replaytest.FingerprintPerf(r.Current().Stream, evs))
		return nil
	})
	return c
}

// onlyBatches drops the loss lines of fingerprints.
func onlyBatches(fps []string) []string {
	var out []string
	for _, f := range fps {
		if !strings.HasPrefix(f, "LOSS ") {
			out = append(out, f)
		}
	}
	return out
}

// compareFingerprints reports the first difference.
func compareFingerprints(t testing.TB, got, want []string) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("batch %d differs:\n got %.300s\nwant %.300s", i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d batches, want %d", len(got), len(want))
	}
}

// fakeClock is a Clock whose After returns at once and advances the
// clock, recording each wait.
type fakeClock struct {
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// genBench writes the synthetic mixed recording for benchmarks.
func genBench(b *testing.B, dir string) {
	replaytest.Generate(b, dir, 2000, store.WriterOptions{})
}

func TestMain(m *testing.M) {
	if dir := os.Getenv("REPLAY_TEST_WRITER"); dir != "" {
		helperWriter(dir)
	}
	os.Exit(m.Run())
}
