package bpf

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is this package's self-telemetry, exported as Prometheus metrics.
// It stands where the seed API takes a *selftelemetry.Metrics. Every
// function that takes a *Metrics accepts nil, which disables the metrics.
type Metrics struct {
	// Per reader, labelled by map name and reader kind (ringbuf, perfbuf).
	EventsReceived *prometheus.CounterVec
	EventsDropped  *prometheus.CounterVec
	EventsLost     *prometheus.CounterVec
	BytesReceived  *prometheus.CounterVec
	// Manager and MapManager state.
	ProgramsLoaded prometheus.Gauge
	LinksActive    prometheus.Gauge
	MapsLoaded     prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"map", "kind"}
	m := &Metrics{
		EventsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ebpfrec", Name: "events_received_total",
			Help: "Events read from BPF ring and perf buffers.",
		}, labels),
		EventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ebpfrec", Name: "events_dropped_total",
			Help: "Events read, then dropped by ebpfrec (ebpfrec_dropped: a handler failed or the queue was full).",
		}, labels),
		EventsLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ebpfrec", Name: "events_lost_total",
			Help: "Events lost in the kernel, a buffer full (kernel_lost_perfbuf for kind perfbuf, kernel_lost_ringbuf for kind ringbuf).",
		}, labels),
		BytesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ebpfrec", Name: "bytes_received_total",
			Help: "Event payload bytes read from BPF ring and perf buffers.",
		}, labels),
		ProgramsLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ebpfrec", Name: "programs_loaded", Help: "BPF programs loaded by the manager.",
		}),
		LinksActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ebpfrec", Name: "links_active", Help: "BPF links attached by the manager.",
		}),
		MapsLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ebpfrec", Name: "maps_loaded", Help: "BPF maps managed by the map manager.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.EventsReceived, m.EventsDropped, m.EventsLost, m.BytesReceived, m.ProgramsLoaded, m.LinksActive, m.MapsLoaded} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// readerCounters are one reader's counters, curried once so the hot path
// does no label lookups. All fields are nil when metrics are disabled.
type readerCounters struct {
	received, dropped, lost, bytes prometheus.Counter
}

func (m *Metrics) forReader(mapName, kind string) readerCounters {
	if m == nil {
		return readerCounters{}
	}
	return readerCounters{
		received: m.EventsReceived.WithLabelValues(mapName, kind),
		dropped:  m.EventsDropped.WithLabelValues(mapName, kind),
		lost:     m.EventsLost.WithLabelValues(mapName, kind),
		bytes:    m.BytesReceived.WithLabelValues(mapName, kind),
	}
}

func addCounter(c prometheus.Counter, n int64) {
	if c != nil && n > 0 {
		c.Add(float64(n))
	}
}

func setGauge(g prometheus.Gauge, v int) {
	if g != nil {
		g.Set(float64(v))
	}
}

// Gauge accessors that accept a nil *Metrics.
func (m *Metrics) mapsGauge() prometheus.Gauge {
	if m == nil {
		return nil
	}
	return m.MapsLoaded
}

func (m *Metrics) programsGauge() prometheus.Gauge {
	if m == nil {
		return nil
	}
	return m.ProgramsLoaded
}

func (m *Metrics) linksGauge() prometheus.Gauge {
	if m == nil {
		return nil
	}
	return m.LinksActive
}
