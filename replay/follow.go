package replay

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ebpfrec/ebpfrec/store"
)

// follow replays what is committed, then polls for more until ctx ends.
// Each pass opens the recording from the segment the previous pass ended
// in (store.OpenLive) and skips what was already read by sequence number.
func (r *Replayer) follow(ctx context.Context, ropts store.ReaderOptions) error {
	r.seen = map[string]bool{}
	fromSeg := 0
	var sig string
	for {
		if ctx.Err() != nil {
			return nil
		}
		if s := dirSignature(r.dir, fromSeg); s != sig || s == "" {
			lr, err := store.OpenLive(r.dir, ropts, fromSeg, r.opts.ScratchDir)
			switch {
			case errors.Is(err, store.ErrNothingCommitted):
			case err != nil:
				return err
			default:
				sig = s
				r.meta = lr.Meta()
				ropts.Streams = r.selected()
				_, err = r.drain(ctx, lr.Reader, r.maxSeq)
				segs := lr.Segments()
				lr.Close()
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if n := len(segs); n > 0 {
					last := segs[n-1]
					if last.Closed {
						fromSeg = last.Index + 1
					} else {
						fromSeg = last.Index
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.opts.Clock.After(r.opts.PollInterval):
		}
	}
}

// dirSignature sums up the names, sizes and modification times of the
// segment files from index fromSeg on: a pass is needed when it changes.
func dirSignature(dir string, fromSeg int) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".seg") || segIndex(name) < fromSeg {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return ""
		}
		b.WriteString(name)
		b.WriteByte(' ')
		b.WriteString(fi.ModTime().Format(time.RFC3339Nano))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(fi.Size(), 10))
		b.WriteByte('\n')
	}
	return b.String()
}

func segIndex(name string) int {
	n := 0
	for _, c := range strings.TrimSuffix(name, ".seg") {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}
