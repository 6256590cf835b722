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
// the disk took.
func TestMetrics_groupCommits(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := api.NewMetrics(reg)
	m.GroupCommit(24, 3*time.Millisecond, 2*time.Millisecond, 40)
	m.GroupCommit(1, time.Millisecond, 500*time.Microsecond, 6)

	got := map[string]*dto.Histogram{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if len(f.GetMetric()) == 1 && f.GetMetric()[0].GetHistogram() != nil {
			got[f.GetName()] = f.GetMetric()[0].GetHistogram()
		}
	}
	// Each histogram saw both group commits; its sum adds up their values.
	for name, sum := range map[string]float64{
		api.MetricGroupCommitDuration: 0.004,  // seconds
		api.MetricGroupCommitRequests: 25,     // requests
		api.MetricGroupCommitWrite:    0.0025, // seconds
		api.MetricGroupCommitPages:    46,     // pages
	} {
		h := got[name]
		if h == nil {
			t.Errorf("registry lacks %s", name)
			continue
		}
		if h.GetSampleCount() != 2 || math.Abs(h.GetSampleSum()-sum) > 1e-9 {
			t.Errorf("%s: count %d sum %v, want 2 and %v", name, h.GetSampleCount(), h.GetSampleSum(), sum)
		}
	}
}
