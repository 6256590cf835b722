package api_test

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/conveyor-dev/conveyor/api"
)

// The store's group commits show as four histograms: how long each
// transaction took (whose sum's rate is how busy the single writer is), how
// many requests each wrote, and how long and how many pages its writes to
// the disk took. A move of the history backlog answers no request: it counts
// in every histogram but that of requests. The backlog gauge shows what the
// last transaction left.
func TestMetrics_groupCommits(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := api.NewMetrics(reg)
	m.GroupCommit(24, 3*time.Millisecond, 2*time.Millisecond, 40, 0)
	m.GroupCommit(1, time.Millisecond, 500*time.Microsecond, 6, 700)
	m.GroupCommit(0, 4*time.Millisecond, time.Millisecond, 30, 200) // a move

	histograms, gauges := map[string]*dto.Histogram{}, map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if len(f.GetMetric()) != 1 {
			continue
		}
		if h := f.GetMetric()[0].GetHistogram(); h != nil {
			histograms[f.GetName()] = h
		}
		if g := f.GetMetric()[0].GetGauge(); g != nil {
			gauges[f.GetName()] = g.GetValue()
		}
	}
	for _, c := range []struct {
		name  string
		count uint64
		sum   float64
	}{
		{api.MetricGroupCommitDuration, 3, 0.008}, // seconds
		{api.MetricGroupCommitRequests, 2, 25},    // requests: not the move
		{api.MetricGroupCommitWrite, 3, 0.0035},   // seconds
		{api.MetricGroupCommitPages, 3, 76},       // pages
	} {
		h := histograms[c.name]
		if h == nil {
			t.Errorf("registry lacks %s", c.name)
			continue
		}
		if h.GetSampleCount() != c.count || math.Abs(h.GetSampleSum()-c.sum) > 1e-9 {
			t.Errorf("%s: count %d sum %v, want %d and %v", c.name, h.GetSampleCount(), h.GetSampleSum(), c.count, c.sum)
		}
	}
	if got, ok := gauges[api.MetricHistoryBacklog]; !ok || got != 200 {
		t.Errorf("%s = %v (present %v), want 200", api.MetricHistoryBacklog, got, ok)
	}
}
