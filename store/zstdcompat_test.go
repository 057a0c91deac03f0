package store

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testdata/zstd-huffman is a recording made by the writer of commit
// d8eaf9b, whose zstd encoder entropy-coded literals (Huffman), with
// zstdCompatBatches and WriterOptions{Sync: SyncNever}. The writer has
// stored literals raw since (see encoderZstd); a reader reads both.

// zstdCompatBatches writes (if w is not nil) and returns the batches of
// the zstd compatibility recording: 40 batches of up to 40 events, with a
// fixed seed, most large enough to be compressed.
func zstdCompatBatches(t testing.TB, w *Writer) []*Batch {
	t.Helper()
	rng := rand.New(rand.NewPCG(31, 32))
	var out []*Batch
	for i := 0; i < 40; i++ {
		b := genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))
		if w != nil {
			if err := w.Append(b); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, cloneBatch(b))
	}
	return out
}

// literalsTypes returns, for each compressed batch record of the segment
// files of dir, the type of the literals section of its zstd frame's
// first compressed block (RFC 8878 3.1.1.3.1.1: 0 raw, 1 RLE, 2 Huffman,
// 3 Huffman with the previous table).
func literalsTypes(t *testing.T, dir string, batches int) []int {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var types []int
	for _, s := range segs {
		data, err := os.ReadFile(s.path)
		if err != nil {
			t.Fatal(err)
		}
		for seq := uint64(1); seq <= uint64(batches); seq++ {
			at, _ := findRecord(t, data, seq)
			if len(at) == 0 {
				continue
			}
			if typ, ok := firstLiteralsType(data[at[0]+headerSize:]); ok {
				types = append(types, typ)
			}
		}
	}
	return types
}

// firstLiteralsType parses a zstd frame's header and block headers up to
// its first compressed block and returns its literals section's type.
func firstLiteralsType(f []byte) (int, bool) {
	if len(f) < 6 || binary.LittleEndian.Uint32(f) != 0xFD2FB528 {
		return 0, false
	}
	fhd := f[4]
	p := 5
	single := fhd&0x20 != 0
	if !single {
		p++ // window descriptor
	}
	p += []int{0, 1, 2, 4}[fhd&3] // dictionary ID
	fcs := []int{0, 2, 4, 8}[fhd>>6]
	if fcs == 0 && single {
		fcs = 1
	}
	p += fcs
	for p+3 <= len(f) {
		bh := uint32(f[p]) | uint32(f[p+1])<<8 | uint32(f[p+2])<<16
		p += 3
		typ, size := (bh>>1)&3, int(bh>>3)
		switch typ {
		case 2:
			if p < len(f) {
				return int(f[p] & 3), true
			}
			return 0, false
		case 1:
			size = 1
		}
		if bh&1 != 0 {
			return 0, false
		}
		p += size
	}
	return 0, false
}

// TestReadZstdHuffman: a recording whose zstd frames have Huffman-coded
// literals (the writer's encoding until the literals were stored raw)
// reads back batch for batch, in every way of decompressing (see
// inflateModes), and verifies; the same batches written today have raw
// literals, and read back the same.
func TestReadZstdHuffman(t *testing.T) {
	want := zstdCompatBatches(t, nil)
	check := func(dir string, wantHuffman bool) {
		t.Helper()
		types := literalsTypes(t, dir, len(want))
		huff := 0
		for _, typ := range types {
			if typ >= 2 {
				huff++
			}
		}
		if len(types) < len(want)/2 || (huff > 0) != wantHuffman {
			t.Fatalf("%s: %d compressed records, %d with Huffman literals (want some: %v)", dir, len(types), huff, wantHuffman)
		}
		t.Logf("%s: %d compressed records, %d with Huffman literals", filepath.Base(dir), len(types), huff)
		for _, m := range inflateModes {
			got, errs, _ := readInflate(t, dir, m.procs, m.ahead, m.byDec, ReaderOptions{})
			if len(errs) != 0 || len(got) != len(want) {
				t.Fatalf("%s, %s: read %d of %d batches, errors %q", dir, m.name, len(got), len(want), errs)
			}
			for i := range want {
				want[i].Seq = got[i].Seq
				batchesEqual(t, got[i], want[i])
			}
		}
		rep, err := Verify(dir)
		if err != nil || !rep.OK() || rep.Batches != uint64(len(want)) {
			t.Fatalf("verify: %v %+v", err, rep)
		}
	}
	check(copyRecording(t, "testdata/zstd-huffman"), true)

	dir := filepath.Join(t.TempDir(), "rec")
	w, err := Create(dir, testMeta(), WriterOptions{Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	zstdCompatBatches(t, w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	check(dir, false)
}
