package tcp

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestExistingListeners reads a /proc made for the test: the listeners of
// tcp and tcp6 (state 0A) with the lowest pid holding each, pid 0 for one
// that no process holds; connected sockets are left out.
func TestExistingListeners(t *testing.T) {
	proc := t.TempDir()
	write := func(name, s string) {
		p := filepath.Join(proc, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(pid, fd, target string) {
		d := filepath.Join(proc, pid, "fd")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(d, fd)); err != nil {
			t.Fatal(err)
		}
	}
	write("net/tcp", `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 100 0 0 10 0
`)
	write("net/tcp6", `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1004 1 0000000000000000 100 0 0 10 0
`)
	write("77/comm", "worker\n")
	write("12/comm", "master\n")
	link("77", "3", "socket:[1001]")
	link("12", "5", "socket:[1001]") // shared with a forked worker: the lowest pid
	link("12", "6", "socket:[1002]")
	link("12", "7", "/dev/null")
	link("77", "4", "socket:[1004]")
	got, err := ExistingListeners(proc)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b Listener) int { return int(a.Port) - int(b.Port) })
	want := []Listener{{Port: 22}, {Port: 80, PID: 77, Comm: "worker"}, {Port: 8080, PID: 12, Comm: "master"}}
	if !slices.Equal(got, want) {
		t.Fatalf("listeners %+v, want %+v", got, want)
	}
	write("net/tcp", "header\n   0: 0100007F:zz 00000000:0000 0A 0 0 0 0 0 1001\n")
	if _, err := ExistingListeners(proc); err == nil {
		t.Fatal("a bad port was read")
	}
}
