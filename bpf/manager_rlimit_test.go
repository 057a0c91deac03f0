package bpf

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

const rlimitChildEnv = "EBPFREC_TEST_RLIMIT_CHILD"

// TestRemoveRlimitWithoutCapSysResource runs itself again in a child
// process with RLIMIT_MEMLOCK at 0 and without CAP_SYS_RESOURCE (so the
// limit cannot be raised), and checks that NewManager with RemoveRlimit
// succeeds and BPF maps can still be created: on kernels with memcg
// accounting, cilium/ebpf's rlimit.RemoveMemlock detects that the limit
// does not apply and leaves it alone. On older kernels (5.10), which charge
// the limit, NewManager fails and names the capability it needs.
func TestRemoveRlimitWithoutCapSysResource(t *testing.T) {
	if os.Getenv(rlimitChildEnv) != "" {
		rlimitChild(t)
		return
	}
	kerneltest.Require(t)
	setpriv, err1 := exec.LookPath("setpriv")
	prlimit, err2 := exec.LookPath("prlimit")
	if err1 != nil || err2 != nil {
		t.Skip("needs setpriv and prlimit (util-linux)")
	}
	cmd := exec.Command(prlimit, "--memlock=0:0",
		setpriv, "--inh-caps=-sys_resource", "--bounding-set=-sys_resource",
		os.Args[0], "-test.run=^TestRemoveRlimitWithoutCapSysResource$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), rlimitChildEnv+"=1", kerneltest.EnvRequire+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rlimit child ok") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func rlimitChild(t *testing.T) {
	if capEffective(t)&(1<<unix.CAP_SYS_RESOURCE) != 0 {
		t.Fatal("child still has CAP_SYS_RESOURCE")
	}
	var lim unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, nil, &lim); err != nil || lim.Cur != 0 {
		t.Fatalf("memlock rlimit %+v, %v; want 0", lim, err)
	}
	// Raising it is really impossible here.
	inf := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, &inf, nil); !errors.Is(err, unix.EPERM) {
		t.Fatalf("raising the memlock rlimit: %v, want EPERM", err)
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK: with the limit
	// at 0 no map can be made, and NewManager must say what it needs.
	probe, perr := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	memcg := perr == nil
	if memcg {
		probe.Close()
	}
	cfg := DefaultManagerConfig()
	cfg.PinPath = ""
	m, err := NewManager(cfg, nil, nil)
	if !memcg {
		if err == nil || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
			t.Fatalf("NewManager on a kernel that charges the memlock rlimit: %v, want an error naming CAP_SYS_RESOURCE", err)
		}
		t.Logf("no memcg accounting for BPF here: %v", err)
		t.Log("rlimit child ok")
		return
	}
	if err != nil {
		t.Fatalf("NewManager with RemoveRlimit: %v", err)
	}
	if _, err := m.MapManager().CreateMap(MapSpec{Name: "big", Type: ebpf.Array, KeySize: 4, ValueSize: 4096, MaxEntries: 1024}); err != nil {
		t.Fatalf("4 MiB map with memlock 0: %v", err)
	}
	if err := m.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Log("rlimit child ok")
}

// capEffective returns this process's effective capability set.
func capEffective(t *testing.T) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			c, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return 0
}
