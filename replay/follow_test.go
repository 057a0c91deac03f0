package replay

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

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
