package store

// What a Writer can be told: sync policy, sizes, retention.

import (
	"errors"
	"fmt"
	"time"
)

// SyncPolicy says when the writer makes committed data durable.
type SyncPolicy int

// String returns "interval", "always" or "never".
func (p SyncPolicy) String() string {
	switch p {
	case SyncInterval:
		return "interval"
	case SyncAlways:
		return "always"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// ParseSyncPolicy parses "interval", "always" or "never".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	for _, p := range []SyncPolicy{SyncInterval, SyncAlways, SyncNever} {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("store: unknown sync policy %q (want interval, always or never)", s)
}

// Defaults of WriterOptions.
const (
	DefaultFlushInterval   = time.Second
	DefaultFlushBytes      = 4 << 20
	DefaultMaxSegmentBytes = 64 << 20
	DefaultMaxSegmentAge   = time.Hour
)

// WriterOptions tune a Writer. Zero values mean the defaults.
type WriterOptions struct {
	// FlushInterval is the longest time an appended batch waits before it
	// is committed (default 1s).
	FlushInterval time.Duration
	// FlushBytes commits as soon as this many record bytes are pending
	// (default 4 MiB). It also bounds the writer's memory, with the largest
	// single batch.
	FlushBytes int
	// Sync is the sync policy (default SyncInterval).
	Sync SyncPolicy
	// MaxSegmentBytes rotates to a new segment when the open one reaches
	// this size (default 64 MiB). An empty segment already takes about
	// 16 KiB (bbolt's meta, freelist and bucket pages), so smaller limits
	// are raised to 32 KiB, and a segment is only rotated once the records
	// appended to it reach at least half the limit: a small limit never
	// rotates at every record.
	MaxSegmentBytes int64
	// MaxSegmentAge rotates to a new segment when the open one is this old
	// (default 1h; negative: never).
	MaxSegmentAge time.Duration
	// KeepSegments keeps at most this many segments on disk, the one being
	// written included, deleting the oldest closed ones at each rotation
	// (0: no limit). 1 is refused: it would delete all history at every
	// rotation.
	KeepSegments int
	// KeepBytes keeps the segments on disk within this many bytes, the one
	// being written counted at MaxSegmentBytes, deleting the oldest closed
	// ones at each rotation (0: no limit). The newest closed segment is
	// always kept, so less than two segments' worth is refused.
	KeepBytes int64
	// Uncompressed stores batches as they are. By default each batch is
	// zstd-compressed (fastest level, literals stored raw) when that saves
	// space: about a fifth of the disk at a few ns of the committer's CPU
	// per event byte (see the README's figures).
	Uncompressed bool

	// format is the format version to write (0: FormatVersion); tests set
	// 1 to make recordings of the previous version.
	format uint32
}

func (o *WriterOptions) fill() {
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.FlushBytes <= 0 {
		o.FlushBytes = DefaultFlushBytes
	}
	if o.MaxSegmentBytes <= 0 {
		o.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	o.MaxSegmentBytes = max(o.MaxSegmentBytes, minSegmentBytes)
	if o.MaxSegmentAge == 0 {
		o.MaxSegmentAge = DefaultMaxSegmentAge
	}
	if o.format == 0 {
		o.format = FormatVersion
	}
}

// Check returns the error Create would return for these options' values
// (retention settings that cannot keep any history), so that a caller
// can refuse them before it starts anything.
func (o WriterOptions) Check() error {
	o.fill()
	return o.checkRetention()
}

// checkRetention refuses retention settings that cannot keep any history.
func (o *WriterOptions) checkRetention() error {
	switch {
	case o.KeepSegments < 0:
		return fmt.Errorf("store: KeepSegments %d: want 0 (no limit) or 2 or more", o.KeepSegments)
	case o.KeepSegments == 1:
		return errors.New("store: KeepSegments 1 would keep only the segment being written and delete all history at every rotation: want 0 (no limit) or 2 or more")
	case o.KeepBytes < 0:
		return fmt.Errorf("store: KeepBytes %d: want 0 (no limit) or more", o.KeepBytes)
	case o.KeepBytes > 0 && o.KeepBytes < 2*o.MaxSegmentBytes:
		return fmt.Errorf("store: KeepBytes %d is less than two segments (2 x MaxSegmentBytes %d): retention would delete all history at every rotation; raise KeepBytes or lower MaxSegmentBytes", o.KeepBytes, o.MaxSegmentBytes)
	}
	return nil
}

// minSegmentBytes is the smallest MaxSegmentBytes: twice an empty segment.
const minSegmentBytes = 32 << 10
