package api_test

import (
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
	d, n := got[api.MetricGroupCommitDuration], got[api.MetricGroupCommitRequests]
	if d == nil || n == nil {
		t.Fatalf("registry lacks %s or %s", api.MetricGroupCommitDuration, api.MetricGroupCommitRequests)
	}
	if d.GetSampleCount() != 2 || d.GetSampleSum() < 0.0039 || d.GetSampleSum() > 0.0041 {
		t.Errorf("%s: count %d sum %v, want 2 and 0.004 s", api.MetricGroupCommitDuration, d.GetSampleCount(), d.GetSampleSum())
	}
	if n.GetSampleCount() != 2 || n.GetSampleSum() != 25 {
		t.Errorf("%s: count %d sum %v, want 2 and 25 requests", api.MetricGroupCommitRequests, n.GetSampleCount(), n.GetSampleSum())
	}
	w, p := got[api.MetricGroupCommitWrite], got[api.MetricGroupCommitPages]
	if w == nil || p == nil {
		t.Fatalf("registry lacks %s or %s", api.MetricGroupCommitWrite, api.MetricGroupCommitPages)
	}
	if w.GetSampleCount() != 2 || w.GetSampleSum() < 0.00249 || w.GetSampleSum() > 0.00251 {
		t.Errorf("%s: count %d sum %v, want 2 and 0.0025 s", api.MetricGroupCommitWrite, w.GetSampleCount(), w.GetSampleSum())
	}
	if p.GetSampleCount() != 2 || p.GetSampleSum() != 46 {
		t.Errorf("%s: count %d sum %v, want 2 and 46 pages", api.MetricGroupCommitPages, p.GetSampleCount(), p.GetSampleSum())
	}
}
