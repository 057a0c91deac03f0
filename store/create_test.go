package store

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// powerLossImages returns what the recording directory may hold after a
// power loss at a stage of a segment's creation (see openSegment). The
// file being created (path) is durable only from the "synced" stage on, and
// its directory entry only from "done": before, the kernel may have written
// any part of it, or none, so the images hold it absent, empty, zeroed at
// its size, and as it is. The other segments are closed and synced.
func powerLossImages(t *testing.T, dir, stage, path string) map[string]string {
	t.Helper()
	base := filepath.Base(path)
	final := strings.TrimSuffix(base, creatingSuffix)
	type variant struct {
		name    string
		as      string // the name the file has in the image ("": absent)
		content func([]byte) []byte
	}
	same := func(b []byte) []byte { return b }
	var vs []variant
	switch stage {
	case "opened", "metadata":
		vs = []variant{
			{"absent", "", nil},
			{"empty", base, func([]byte) []byte { return nil }},
			{"zeroed", base, func(b []byte) []byte { return make([]byte, len(b)) }},
			{"half", base, func(b []byte) []byte { c := make([]byte, len(b)); copy(c, b[:len(b)/2]); return c }},
			{"as-is", base, same},
		}
	case "synced":
		vs = []variant{{"absent", "", nil}, {"as-is", base, same}}
	case "renamed":
		// The rename may not have reached the disk.
		vs = []variant{{"old-name", final + creatingSuffix, same}, {"new-name", final, same}}
	default:
		vs = []variant{{"as-is", base, same}}
	}
	out := map[string]string{}
	for _, v := range vs {
		img := filepath.Join(t.TempDir(), "rec")
		if err := os.Mkdir(img, 0o700); err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			src := filepath.Join(dir, e.Name())
			b, err := readFileAll(src)
			if err != nil {
				t.Fatal(err)
			}
			name := e.Name()
			if name == base {
				if v.as == "" {
					continue
				}
				b, name = v.content(b), v.as
			}
			if err := os.WriteFile(filepath.Join(img, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out[stage+"/"+v.name] = img
	}
	return out
}

func readFileAll(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// TestPowerLossDuringSegmentCreation takes images of a recording as a
// power loss could leave it at every step of creating its next segment
// (retention deleting the oldest at the same rotation): each must read
// back every committed batch, verify without a problem and say nothing
// is damaged, since nothing committed was lost.
func TestPowerLossDuringSegmentCreation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	var w *Writer
	type image struct {
		dir       string
		committed uint64
	}
	images := map[string]image{}
	var creating atomic.Int64
	createStageHook = func(stage, path string) {
		// Segments 2 and 3: the first rotation, and one where retention
		// deletes segment 1.
		if n := creating.Load(); n == 2 || n == 3 {
			for k, d := range powerLossImages(t, dir, stage, path) {
				images[fmt.Sprintf("segment %d %s", n, k)] = image{d, w.Committed()}
			}
		}
	}
	defer func() { createStageHook = nil }()
	creating.Store(1)
	var err error
	w, err = Create(dir, testMeta(), WriterOptions{MaxSegmentBytes: 64 << 10, FlushBytes: 16 << 10, KeepSegments: 2, Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var want []*Batch
	for i := 0; w.Segment() < 4; i++ {
		b := genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))
		// The committer creates segment Segment()+1 at the next rotation;
		// Flush after each batch keeps the hook's figures exact.
		creating.Store(int64(w.Segment() + 1))
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
		want = append(want, cloneBatch(b))
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(images) < 20 {
		t.Fatalf("only %d images taken", len(images))
	}
	for name, img := range images {
		r, err := Open(img.dir, ReaderOptions{})
		if err != nil {
			t.Errorf("%s: open: %v", name, err)
			continue
		}
		var got []*Batch
		for b, err := range r.All() {
			if err != nil {
				t.Errorf("%s: read: %v", name, err)
				break
			}
			got = append(got, cloneBatch(b))
		}
		r.Close()
		// Every batch committed before the stage, and none other.
		var expect []*Batch
		for _, b := range want {
			if b.Seq <= img.committed {
				expect = append(expect, b)
			}
		}
		if len(got) != len(expect) || len(got) == 0 {
			t.Errorf("%s: %d batches read, %d committed", name, len(got), len(expect))
			continue
		}
		for i := range got {
			batchesEqual(t, got[i], expect[i])
		}
		rep, err := Verify(img.dir)
		if err != nil {
			t.Errorf("%s: verify: %v", name, err)
			continue
		}
		if !rep.OK() {
			t.Errorf("%s: verify reports damage: %v", name, rep.Problems)
		}
		leftover, _ := filepath.Glob(filepath.Join(img.dir, "*"+creatingSuffix))
		if said := strings.Contains(strings.Join(rep.Skipped, "\n"), "creation was interrupted"); said != (len(leftover) > 0) {
			t.Errorf("%s: leftovers %v, verify's notes %q", name, leftover, rep.Skipped)
		}
		if _, err := Info(img.dir); err != nil {
			t.Errorf("%s: info: %v", name, err)
		}
	}
}
