package store

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const envCrashChild = "EBPFREC_STORE_CRASH_CHILD"

// crashBatch is batch i of the crash test's writer: the parent regenerates
// it to check what survived.
func crashBatch(i int) *Batch {
	rng := rand.New(rand.NewPCG(uint64(i), 99))
	return genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))
}

// crashChild is the writer of TestCrash, run in a child process (from
// TestMain): it appends batches forever and prints the last committed
// sequence number after each flush.
func crashChild(dir string) {
	w, err := Create(dir, testMeta(), WriterOptions{MaxSegmentBytes: 256 << 10, FlushBytes: 64 << 10, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		if err := w.Append(crashBatch(i)); err != nil {
			fmt.Fprintln(out, "error", err)
			out.Flush()
			os.Exit(1)
		}
		if i%50 == 0 {
			if err := w.Flush(); err != nil {
				fmt.Fprintln(out, "error", err)
				out.Flush()
				os.Exit(1)
			}
		}
		fmt.Fprintln(out, w.Committed())
		out.Flush()
	}
}

// TestCrash kills a writing child process with SIGKILL at random moments;
// each time the recording must open, verify, and hold every batch the
// child reported committed, exactly.
func TestCrash(t *testing.T) {
	runs := 30
	if testing.Short() {
		runs = 5
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for run := 0; run < runs; run++ {
		dir := filepath.Join(t.TempDir(), "rec")
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), envCrashChild+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a random number of reported commits (0-3000 lines).
		killAfter := rng.IntN(800)
		sc := bufio.NewScanner(stdout)
		var committed uint64
		lines := 0
		for sc.Scan() {
			line := sc.Text()
			n, err := strconv.ParseUint(line, 10, 64)
			if err != nil {
				if line == "PASS" || line == "" {
					continue
				}
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child: %s", line)
			}
			committed = max(committed, n)
			lines++
			if lines >= killAfter {
				break
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		// What the child printed after this point may also be committed;
		// the check below needs only what was reported before the kill.
		go io.Copy(io.Discard, stdout)
		cmd.Wait()

		rep, err := Verify(dir)
		if err != nil {
			t.Fatalf("run %d: verify: %v", run, err)
		}
		if !rep.OK() {
			t.Fatalf("run %d: verify after kill: %v", run, rep.Problems)
		}
		r, err := Open(dir, ReaderOptions{})
		if err != nil {
			t.Fatalf("run %d: open after kill: %v", run, err)
		}
		i := 0
		var last uint64
		for b, err := range r.All() {
			if err != nil {
				t.Fatalf("run %d: %v", run, err)
			}
			want := crashBatch(i)
			want.Seq = uint64(i + 1)
			batchesEqual(t, b, want)
			last = b.Seq
			i++
		}
		r.Close()
		if last < committed {
			t.Fatalf("run %d: recording ends at batch %d, but %d was reported committed", run, last, committed)
		}
		t.Logf("run %d: killed after %d reports; committed %d, recovered %d batches", run, lines, committed, last)
	}
}
