package cluster

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/client"
)

// benchClients is how many clients submit seed holds at once.
const benchClients = 64

// BenchmarkCluster measures seed-hold flows per second (submit over HTTP,
// the hold call to the LiqPay simulator, its callback over HTTP, final)
// through the proxy with one, two and three nodes on PostgreSQL, and one
// node on bolt for comparison. Every process (the nodes, PostgreSQL, the
// simulator, the proxy and the clients) shares this machine; see
// docs/postgres.md for numbers and what limits them. Run with e.g.
// `go test ./tests/cluster -run '^$' -bench . -benchtime 3000x`.
func BenchmarkCluster(b *testing.B) {
	b.Run("bolt/nodes=1", func(b *testing.B) { benchFlows(b, newBoltNode(b)) })
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("postgres/nodes=%d", n), func(b *testing.B) { benchFlows(b, newCluster(b, n, 30*time.Second)) })
	}
}

// benchFlows submits b.N seed holds from benchClients clients and waits
// until every one is held; it reports flows/s over that time.
func benchFlows(b *testing.B, c *cluster) {
	api := client.New(c.lb.url(), "", &http.Client{Timeout: 30 * time.Second})
	ctx := context.Background()
	warm(b, api, c, 50)
	base := held(b, api)
	nodes, pg, self := c.nodesCPU(), postgresCPU(), selfCPU()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range benchClients {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				order := fmt.Sprintf("b%d-%d", start.UnixNano(), i)
				if _, _, err := api.Submit(ctx, "liqpay-hold", order, holdData(order)); err != nil {
					b.Errorf("submit: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	submitted := time.Since(start)
	deadline := time.Now().Add(2 * time.Minute)
	for held(b, api)-base < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d flows held after 2 minutes", held(b, api)-base, b.N)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	b.StopTimer()
	perFlow := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(float64(b.N)/took.Seconds(), "flows/s")
	b.ReportMetric(float64(b.N)/submitted.Seconds(), "submits/s")
	// Where the CPU went, per flow: the nodes, PostgreSQL, and this process
	// (proxy, simulator, clients). The machine's other load does not count.
	b.ReportMetric(perFlow(c.nodesCPU()-nodes), "node-cpu-ms/flow")
	b.ReportMetric(perFlow(postgresCPU()-pg), "pg-cpu-ms/flow")
	b.ReportMetric(perFlow(selfCPU()-self), "harness-cpu-ms/flow")
	b.ReportMetric(0, "ns/op")
	for _, n := range c.nodes {
		n.stop(b)
	}
}

// warm runs a few flows, so that connections and caches are up.
func warm(b *testing.B, api *client.Client, c *cluster, n int) {
	base := held(b, api)
	for i := range n {
		order := fmt.Sprintf("warm-%d-%d", time.Now().UnixNano(), i)
		if _, _, err := api.Submit(context.Background(), "liqpay-hold", order, holdData(order)); err != nil {
			b.Fatal(err)
		}
	}
	for held(b, api)-base < int64(n) {
		time.Sleep(20 * time.Millisecond)
	}
}

// held is how many tasks ever reached the held node.
func held(b *testing.B, api *client.Client) int64 {
	p, err := api.Process(context.Background(), "liqpay-hold")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range p.Nodes {
		if n.Name == "held" {
			return n.Counts.Total
		}
	}
	b.Fatal("liqpay-hold has no node held")
	return 0
}
