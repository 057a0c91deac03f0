package replay

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/all"
	"github.com/ebpfrec/ebpfrec/store"
)

// fixturesDir holds the real recordings (see fixtures/README.md).
const fixturesDir = "../fixtures"

// fixtures lists the recordings in fixtures/ that have live fingerprints
// beside them (NAME.fingerprints, written by `ebpfrec record
// --fingerprints` from the live handler).
func fixtures(t *testing.T) []string {
	t.Helper()
	fps, _ := filepath.Glob(filepath.Join(fixturesDir, "*.fingerprints"))
	var names []string
	for _, f := range fps {
		name := strings.TrimSuffix(filepath.Base(f), ".fingerprints")
		if segs, _ := filepath.Glob(filepath.Join(fixturesDir, name, "*.seg")); len(segs) > 0 {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		t.Fatal("no fixtures with fingerprints in " + fixturesDir + " (they are committed: see fixtures/README.md)")
	}
	return names
}

// replayFingerprints replays a recording into handlers that fingerprint
// each batch as received (store.FingerprintLine), as the recorder's live
// tee handler does.
func replayFingerprints(t *testing.T, dir string) []string {
	t.Helper()
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var evs []store.Event
	r.HandleRingbuf("", func(_ context.Context, in []bpf.RingbufEvent) error {
		evs = evs[:0]
		for _, e := range in {
			evs = append(evs, store.Event{Raw: e.Raw, Timestamp: e.Timestamp})
		}
		b := r.Current()
		lines = append(lines, store.FingerprintLine(b.Seq, b.Stream, store.KindRingbuf, evs))
		return nil
	})
	r.HandlePerfbuf("", func(_ context.Context, in []bpf.PerfbufEvent) error {
		b := r.Current()
		lines = append(lines, store.FingerprintLine(b.Seq, b.Stream, store.KindPerfbuf, in))
		return nil
	})
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestFixturesExact replays every fixture and compares, batch by batch, the
// fingerprints of what the handlers received with those the live handler
// wrote while recording (contract 1).
func TestFixturesExact(t *testing.T) {
	for _, name := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(fixturesDir, name+".fingerprints"))
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Split(strings.TrimSpace(string(data)), "\n")
			got := replayFingerprints(t, filepath.Join(fixturesDir, name))
			if len(want) == 0 || len(got) == 0 {
				t.Fatalf("empty: %d live, %d replayed batches", len(want), len(got))
			}
			compareFingerprints(t, got, want)
		})
	}
}

// TestFixturesDecodedLikeLive replays each built-in tracer's streams of the
// fixtures through HandleDecoded and checks that every event is the one the
// tracer's Decode gives for the recorded bytes, in order: replay decodes with
// the live code path, and the live batches are those of TestFixturesExact.
func TestFixturesDecodedLikeLive(t *testing.T) {
	for _, name := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(fixturesDir, name)
			// What the live path decodes: Decode on every recorded event.
			sr, err := store.Open(dir, store.ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			meta := sr.Meta()
			var want []string
			for b, err := range sr.All() {
				if err != nil {
					t.Fatal(err)
				}
				si, _ := meta.Stream(b.Stream)
				tr, err := tracers.New(si.Tracer, tracers.Options{})
				for _, e := range b.Events {
					if err != nil || si.Object != nil {
						want = append(want, b.Stream+" raw")
						continue
					}
					ev, derr := tr.Decode(b.Stream, e.Raw)
					if derr != nil {
						// A fixture older than its tracer's layout: the
						// replay must fail the same way.
						want = append(want, b.Stream+" error: "+derr.Error())
						continue
					}
					want = append(want, string(tracers.AppendLine(nil, ev)))
				}
			}
			sr.Close()
			r, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			r.HandleDecoded(func(d *Decoded) error {
				switch {
				case d.Err != nil:
					got = append(got, d.Stream.Name+" error: "+d.Err.Error())
				case d.Event == nil:
					got = append(got, d.Stream.Name+" raw")
				default:
					got = append(got, string(tracers.AppendLine(nil, d.Event)))
				}
				return nil
			})
			if _, err := r.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			compareFingerprints(t, got, want)
		})
	}
}
