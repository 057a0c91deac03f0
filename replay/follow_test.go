package replay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/replay/replaytest"
	"github.com/ebpfrec/ebpfrec/store"
)

// waitFor waits until cond holds, failing the test after a generous bound
// (a hang guard, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestFollowWriterGoroutine follows a recording that a writer in the same
// process is appending to, rotating segments: in steps, the writer commits
// and waits until the follower has delivered everything so far, which it can
// only do by reading the segment the writer holds open.
func TestFollowWriterGoroutine(t *testing.T) {
	dir := t.TempDir()
	const n = 300
	want := replaytest.Generate(t, t.TempDir(), n, store.WriterOptions{})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c *collector
	done := make(chan error, 1)
	wopts := store.WriterOptions{MaxSegmentBytes: 64 << 10, FlushInterval: time.Hour, Sync: store.SyncNever}
	replaytest.GenerateStep(t, dir, n, wopts, func(i int, w *store.Writer, fps []string) {
		if i == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			c = newCollector(t, dir, Options{Follow: true, PollInterval: time.Millisecond, ScratchDir: t.TempDir()})
			go func() {
				_, err := c.r.Run(ctx)
				done <- err
			}()
		}
		if i%37 == 36 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the follower to catch up at batch "+strconv.Itoa(i), func() bool { return c.count() >= countBatches(fps) })
		}
	})
	waitFor(t, "the follower to read everything", func() bool { return c.count() >= countBatches(want) })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow ended with %v", err)
	}
	compareFingerprints(t, onlyBatches(c.snapshot()), onlyBatches(want))
}

func countBatches(fps []string) int { return len(onlyBatches(fps)) }

// TestFollowWriterProcess follows a recording that another process writes.
func TestFollowWriterProcess(t *testing.T) {
	dir := t.TempDir()
	const n = 400
	want := replaytest.Generate(t, t.TempDir(), n, store.WriterOptions{})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "REPLAY_TEST_WRITER="+dir, "REPLAY_TEST_N="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the writer's first segment", func() bool {
		_, err := os.Stat(filepath.Join(dir, "000001.seg"))
		return err == nil
	})
	c := newCollector(t, dir, Options{Follow: true, PollInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.r.Run(ctx)
		done <- err
	}()
	waitFor(t, "the follower to read everything", func() bool { return c.count() >= countBatches(want) })
	if err := cmd.Wait(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow ended with %v", err)
	}
	compareFingerprints(t, onlyBatches(c.snapshot()), onlyBatches(want))
}

// helperWriter is the writer process of TestFollowWriterProcess, started
// from TestMain.
func helperWriter(dir string) {
	n, _ := strconv.Atoi(os.Getenv("REPLAY_TEST_N"))
	wopts := store.WriterOptions{MaxSegmentBytes: 64 << 10, FlushInterval: 5 * time.Millisecond, Sync: store.SyncNever}
	replaytest.GenerateStep(exitTB{}, dir, n, wopts, func(i int, w *store.Writer, _ []string) {
		if i%25 == 0 {
			time.Sleep(3 * time.Millisecond) // let the follower see partial states
		}
	})
	os.Exit(0)
}

// exitTB ends the helper process on the first failure.
type exitTB struct{}

func (exitTB) Helper() {}
func (exitTB) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, args...)
	os.Exit(1)
}

// TestFollowWithRetention follows a recording whose retention deletes
// segments faster than the follower reads them (its handler is held while
// the writer goes on): every record is delivered or reported missed,
// exactly once, by range.
func TestFollowWithRetention(t *testing.T) {
	dir := t.TempDir()
	const n = 3001 // the last record is a batch (loss points follow every 8th)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu        sync.Mutex
		delivered = map[uint64]bool{}
		missed    [][2]uint64
		lastSeen  uint64
		dups      int
	)
	gate := make(chan struct{})
	var r *Replayer
	done := make(chan error, 1)
	var stats Stats
	wopts := store.WriterOptions{MaxSegmentBytes: 64 << 10, FlushInterval: time.Hour, KeepSegments: 2, Sync: store.SyncNever}
	var w *store.Writer
	replaytest.GenerateStep(t, dir, n, wopts, func(i int, sw *store.Writer, _ []string) {
		w = sw
		switch i {
		case 0:
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			var err error
			r, err = Open(dir, Options{Follow: true, PollInterval: time.Millisecond, ScratchDir: t.TempDir(), OnDamage: Continue,
				Report: func(err error) {
					var me *MissedError
					if !errors.As(err, &me) {
						t.Errorf("reported: %v", err)
						return
					}
					mu.Lock()
					missed = append(missed, [2]uint64{me.First, me.Last})
					mu.Unlock()
				}})
			if err != nil {
				t.Fatal(err)
			}
			first := true
			handle := func() {
				if first {
					<-gate // held while the writer rotates and retention deletes
					first = false
				}
				mu.Lock()
				seq := r.Current().Seq
				if delivered[seq] {
					dups++
				}
				delivered[seq] = true
				lastSeen = max(lastSeen, seq)
				mu.Unlock()
			}
			r.HandleRingbuf("", func(context.Context, []bpf.RingbufEvent) error { handle(); return nil })
			r.HandlePerfbuf("", func(context.Context, []bpf.PerfbufEvent) error { handle(); return nil })
			go func() {
				var err error
				stats, err = r.Run(ctx)
				done <- err
			}()
		case n / 2:
			close(gate)
		}
	})
	total := w.Committed()
	// Wait for the last record, or for Run to end early; on timeout, say
	// where the follower stood.
	deadline := time.After(60 * time.Second)
	var runErr error
	ended := false
wait:
	for {
		mu.Lock()
		reached := lastSeen == total
		mu.Unlock()
		if reached {
			break
		}
		select {
		case runErr = <-done:
			ended = true
			break wait
		case <-deadline:
			mu.Lock()
			msg := fmt.Sprintf("timed out waiting for the follower to reach the last record %d: it delivered %d batches, the last %d; missed ranges %v",
				total, len(delivered), lastSeen, missed)
			mu.Unlock()
			pprof.Lookup("goroutine").WriteTo(os.Stderr, 1) // where it is stuck
			t.Fatal(msg)
		case <-time.After(2 * time.Millisecond):
		}
	}
	if ended {
		t.Fatalf("follow ended before the last record %d (the last delivered %d) with %v", total, lastSeen, runErr)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow ended with %v", err)
	}
	var lossPoints uint64
	for _, st := range stats.Streams {
		lossPoints += st.LossPoints
	}
	var inRanges uint64
	for _, m := range missed {
		inRanges += m[1] - m[0] + 1
		for s := m[0]; s <= m[1]; s++ {
			if delivered[s] {
				t.Errorf("batch %d delivered and reported missed (range %d-%d)", s, m[0], m[1])
			}
		}
	}
	if dups != 0 || inRanges != stats.Missed {
		t.Errorf("%d batches delivered twice; missed ranges hold %d records, Stats.Missed %d", dups, inRanges, stats.Missed)
	}
	if got := stats.Batches + lossPoints + stats.Missed; got != total || stats.Batches != uint64(len(delivered)) {
		// Name the records neither delivered nor reported (loss points
		// among them break a range by one record).
		var holes []string
		for s := uint64(1); s <= total; s++ {
			if delivered[s] || slices.ContainsFunc(missed, func(m [2]uint64) bool { return m[0] <= s && s <= m[1] }) {
				continue
			}
			e := s
			for e+1 <= total && !delivered[e+1] && !slices.ContainsFunc(missed, func(m [2]uint64) bool { return m[0] <= e+1 && e+1 <= m[1] }) {
				e++
			}
			holes = append(holes, fmt.Sprintf("%d-%d", s, e))
			s = e
		}
		t.Logf("records neither delivered nor reported missed: %v; missed ranges %v", holes, missed)
		t.Fatalf("%d batches delivered + %d loss points + %d missed = %d, want the %d records written (handlers saw %d batches)",
			stats.Batches, lossPoints, stats.Missed, got, total, len(delivered))
	}
	if stats.Missed == 0 || len(missed) == 0 {
		t.Fatalf("retention never outran the follower (%d records, %d delivered): the test proves nothing", total, stats.Batches)
	}
	t.Logf("%d records: %d batches delivered, %d loss points, %d missed in %d ranges", total, stats.Batches, lossPoints, stats.Missed, len(missed))
}
