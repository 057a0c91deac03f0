package safetext

import "testing"

func BenchmarkCleanBytes(b *testing.B) {
	line := []byte("2026-11-25T08:00:00.012000000Z [---] 1002 make exec: filename=/usr/bin/make args=\"make -v\" ppid=1000 uid=0")
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if !CleanBytes(line) {
			b.Fatal("not clean")
		}
	}
}

func BenchmarkJSONLine(b *testing.B) {
	line := []byte(`{"type":"event","time":"2026-11-25T08:00:00.012000000Z","cpu":null,"stream":"exec","tracer":"exec","seq":12,"comm":"make","filename":"/usr/bin/make","args":["make","-v"]}`)
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		JSON(line)
	}
}
