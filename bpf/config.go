package bpf

import (
	"time"

	"github.com/cilium/ebpf"
)

// RingbufConfig holds ring buffer reader configuration.
type RingbufConfig struct {
	// BufferSize is the size hint for the ring buffer reader: the initial
	// capacity, in bytes, of each batch's event arena (it grows as needed).
	BufferSize int `mapstructure:"buffer_size"`
	// Workers is the number of worker goroutines processing events
	Workers int `mapstructure:"workers"`
	// BatchSize is the number of events to batch before processing
	BatchSize int `mapstructure:"batch_size"`
	// FlushInterval is the max time to wait before processing a partial batch
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	// DropWhenBusy, with more than one worker, drops a full batch (counted
	// in EventsDropped) when every worker is busy and the queue is full,
	// instead of blocking the reader until a worker is free (the default,
	// which leaves the excess to be lost in the kernel and counted there).
	DropWhenBusy bool `mapstructure:"drop_when_busy"`
	// DropCounter, if set, is a per-CPU array map whose key 0 holds, per
	// CPU, how many events the BPF program failed to reserve or output
	// (ring buffers report no loss themselves). The reader sums it into
	// RingbufStats.EventsLost.
	DropCounter *ebpf.Map `mapstructure:"-"`
}

// DefaultRingbufConfig returns default configuration.
func DefaultRingbufConfig() RingbufConfig {
	return RingbufConfig{
		BufferSize:    64 * 1024,
		Workers:       1,
		BatchSize:     256,
		FlushInterval: 100 * time.Millisecond,
	}
}

// PerfbufConfig holds perf buffer reader configuration.
type PerfbufConfig struct {
	// PerCPUBufferSize is the size of each per-CPU buffer
	PerCPUBufferSize int `mapstructure:"per_cpu_buffer_size"`
	// Watermark is the number of bytes after which the buffer is flushed
	Watermark int `mapstructure:"watermark"`
	// Workers is the number of worker goroutines processing events
	Workers int `mapstructure:"workers"`
	// BatchSize is the number of events to batch before processing
	BatchSize int `mapstructure:"batch_size"`
	// FlushInterval is the max time to wait before processing a partial batch
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	// DropWhenBusy is as for RingbufConfig.
	DropWhenBusy bool `mapstructure:"drop_when_busy"`
}

// DefaultPerfbufConfig returns default configuration.
func DefaultPerfbufConfig() PerfbufConfig {
	return PerfbufConfig{
		PerCPUBufferSize: 256 * 1024,
		Watermark:        4096,
		Workers:          1,
		BatchSize:        256,
		FlushInterval:    100 * time.Millisecond,
	}
}
