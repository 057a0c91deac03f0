package store

import (
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestPanicBoundary: a panic inside bbolt is recovered into an error at
// the boundary; a panic of this package's own code is not swallowed.
func TestPanicBoundary(t *testing.T) {
	inBolt := func() {
		var c *bolt.Cursor
		c.First() // panics inside bbolt
	}
	ours := func() { panic("a bug of ours") }
	classify := func(f func()) (fromBolt bool) {
		defer func() {
			p := recover()
			if p == nil {
				t.Fatal("no panic")
			}
			fromBolt = boltPanic(p)
		}()
		f()
		return false
	}
	if !classify(inBolt) {
		t.Error("a panic inside bbolt not recognized")
	}
	if classify(ours) {
		t.Error("a panic of ours taken for bbolt's")
	}
	boundary := func(f func()) (err error) {
		defer recoverTo(&err, "testing")
		f()
		return nil
	}
	if err := boundary(inBolt); err == nil {
		t.Error("bbolt's panic not turned into an error")
	}
	var escaped any
	func() {
		defer func() { escaped = recover() }()
		_ = boundary(ours)
	}()
	if escaped != "a bug of ours" {
		t.Errorf("our panic was swallowed: %v", escaped)
	}
}
