package record

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// pidfds counts this process's open pidfds.
func pidfds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.Contains(l, "pidfd") {
			n++
		}
	}
	return n
}

// TestWatchPIDsStops: a recording of --pid processes that ends before
// they do stops watching them: no goroutine and no pidfd is left behind.
// A process that exits closes the channel.
func TestWatchPIDsStops(t *testing.T) {
	procs := make([]*exec.Cmd, 3)
	pids := make([]uint32, 3)
	for i := range procs {
		procs[i] = exec.Command("sleep", "600")
		if err := procs[i].Start(); err != nil {
			t.Fatal(err)
		}
		defer procs[i].Process.Kill()
		pids[i] = uint32(procs[i].Process.Pid)
	}
	before := pidfds(t)
	for range 20 {
		done, stop, err := watchPIDs(pids)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
			t.Fatal("done before the processes exited")
		default:
		}
		stop()
		stop() // twice is fine
	}
	if n := pidfds(t); n != before {
		t.Fatalf("%d pidfds open after 20 stopped watches, %d before", n, before)
	}
	// stop returns once the goroutine closed its last channel; it may
	// still be on its way out (the 6.1 VM caught one in its deferred
	// calls), so give it a while to be gone.
	buf := make([]byte, 1<<20)
	for i := 0; ; i++ {
		st := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(st, "record.watchPIDs.func") {
			break
		}
		if i == 500 {
			t.Fatalf("a watching goroutine is left after 20 stopped watches:\n%s", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// And when they exit, done closes.
	done, stop, err := watchPIDs(pids)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, p := range procs {
		p.Process.Kill()
		p.Wait()
	}
	<-done
}
