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
	// Workers is the number of goroutines calling the handler. With 1 the
	// handler runs on the read goroutine and sees batches in read order;
	// with more, batches are handled concurrently, in no global order.
	Workers int `mapstructure:"workers"`
	// BatchSize is the most events handed to one handler call.
	BatchSize int `mapstructure:"batch_size"`
	// FlushInterval bounds how long a read event waits before the handler
	// gets it: a partial batch is handed over when it expires, and the
	// reader wakes for it even without a wakeup from the kernel. At least
	// 1 ms (the resolution of the reader's deadlines).
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	// DropWhenBusy, with more than one worker, drops a full batch (counted
	// in EventsDropped) when every worker is busy and the queue is full,
	// instead of blocking the reader until a worker is free (the default,
	// which leaves the excess to be lost in the kernel and counted there).
	DropWhenBusy bool `mapstructure:"drop_when_busy"`
	// DropCounter, if set, is a per-CPU array map (or an array) with 8-byte
	// values whose key 0 holds, per CPU, how many events the BPF program
	// failed to reserve or output (ring buffers report no loss themselves).
	// The reader samples it, summed over CPUs, into RingbufStats.EventsLost
	// at most once per FlushInterval while it runs, and once more after the
	// last read when Start returns.
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
	// PerCPUBufferSize is the size of each per-CPU buffer in bytes (rounded
	// up to whole pages).
	PerCPUBufferSize int `mapstructure:"per_cpu_buffer_size"`
	// Watermark is how many bytes a per-CPU buffer holds before the kernel
	// wakes the reader (0: every sample wakes it). It must be smaller than
	// PerCPUBufferSize; FlushInterval still bounds the latency below it.
	Watermark int `mapstructure:"watermark"`
	// Workers is as for RingbufConfig.
	Workers int `mapstructure:"workers"`
	// BatchSize is the most events handed to one handler call.
	BatchSize int `mapstructure:"batch_size"`
	// FlushInterval is as for RingbufConfig.
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
