package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

// seedProcess is the shipped seed flow.
const seedProcess = "liqpay-hold"

// holdData is the input of a LiqPay hold on the sandbox card that is held
// at once, as the demo submits it.
func holdData(orderID string) map[string]any {
	return map[string]any{
		"phone": "380950000001", "amount": json.Number("7.34"), "currency": "UAH", "description": "Conveyor bench",
		"order_id": orderID, "card": liqpay.CardSuccess, "card_exp_month": "12", "card_exp_year": "29",
		"card_cvv": "123", "ip": "127.0.0.1",
	}
}

// submitHold submits a hold as client.Submit does (the same request body)
// but answers to it the way the ceiling's client does: the whole answer
// read, its status checked (201), nothing decoded. Clients and service
// share the process, so decoding the task view here (client.Submit's JSON
// into its Task type) would bill the engine for the load generator's work,
// which the ceiling's client does not do.
func submitHold(ctx context.Context, hc *http.Client, base, ref string) error {
	body, err := json.Marshal(struct {
		Ref  string `json:"ref"`
		Data any    `json:"data"`
	}{ref, holdData(ref)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/processes/"+seedProcess+"/tasks", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return roundTrip(hc, req, http.StatusCreated)
}

// seedHold runs the seed's hold at each concurrency, Size.Rounds times, each
// round on a fresh service and followed at once by the ceiling's window at
// the same concurrency (when the ceiling is selected), so that both sides of
// a share suffer the same neighbours. The table shows the round whose share
// (or, without the ceiling, whose rate) is the median; a note lists them all.
func (r *runner) seedHold(ctx context.Context) error {
	r.seed = map[int]*loadResult{}
	var commits, flows float64
	for _, conc := range r.o.Size.SeedConcurrency {
		rounds := make([]seedRound, 0, r.o.Size.Rounds)
		for range r.o.Size.Rounds {
			var sr seedRound
			var perFlow float64
			var err error
			sr.rows, sr.notes, err = r.capture(func() error {
				var err error
				sr.res, perFlow, err = r.seedAt(ctx, conc)
				return err
			})
			if err != nil {
				return err
			}
			commits += perFlow * float64(sr.res.total)
			flows += float64(sr.res.total)
			if r.selected(Ceiling) {
				if sr.ceiling, err = r.measureCeiling(ctx, conc, commitsOf(perFlow)); err != nil {
					return fmt.Errorf("ceiling: %w", err)
				}
			}
			rounds = append(rounds, sr)
		}
		m := median(rounds)
		r.seed[conc] = m.res
		r.rep.Rows = append(r.rep.Rows, m.rows...)
		r.rep.Notes = append(r.rep.Notes, m.notes...)
		if m.ceiling != nil {
			r.ceiling[conc] = m.ceiling
		}
		if len(rounds) > 1 {
			r.note("seed @ %d: %s; the rows above are the median round's", conc, roundsText(rounds))
		}
	}
	r.commitsPerFlow = commits / flows
	r.add(Row{Scenario: Seed, Metric: "store commits per flow (measured)", Value: r.commitsPerFlow, Unit: ""})
	return nil
}

// seedRound is one measurement of the seed at one concurrency, with the rows
// and notes it produced and the ceiling measured right after it (nil when
// the ceiling is not selected).
type seedRound struct {
	res     *loadResult
	rows    []Row
	notes   []string
	ceiling *ceilingResult
}

// share is the round's seed rate over its ceiling's, 0 without a ceiling.
func (sr seedRound) share() float64 {
	if sr.ceiling == nil || sr.ceiling.res.rate == 0 {
		return 0
	}
	return sr.res.rate / sr.ceiling.res.rate
}

// median returns the round with the median share, or the median seed rate
// when no round has a ceiling; of an even number, the lower middle one.
func median(rounds []seedRound) seedRound {
	sorted := slices.Clone(rounds)
	slices.SortStableFunc(sorted, func(a, b seedRound) int {
		if a.ceiling != nil && b.ceiling != nil {
			return cmp.Compare(a.share(), b.share())
		}
		return cmp.Compare(a.res.rate, b.res.rate)
	})
	return sorted[(len(sorted)-1)/2]
}

// roundsText lists the rounds in the order they ran: seed flows/s, and with
// a ceiling, the ceiling's and the share, and the bare provider's limit and
// the share of it.
func roundsText(rounds []seedRound) string {
	parts := make([]string, len(rounds))
	for i, sr := range rounds {
		parts[i] = thousands(int64(sr.res.rate + 0.5))
		if sr.ceiling != nil {
			parts[i] += fmt.Sprintf(" / %s flows/s (%.0f %%", thousands(int64(sr.ceiling.res.rate+0.5)), 100*sr.share())
			if l := sr.ceiling.limit; l != nil && l.rate > 0 {
				parts[i] += fmt.Sprintf("; bare provider %s, %.0f %%", thousands(int64(l.rate+0.5)), 100*sr.res.rate/l.rate)
			}
			parts[i] += ")"
		} else {
			parts[i] += " flows/s"
		}
	}
	what := "seed flows/s"
	if rounds[0].ceiling != nil {
		what = "seed / ceiling flows/s (share), each ceiling window right after its seed window"
	}
	return fmt.Sprintf("%d rounds, %s: %s", len(rounds), what, strings.Join(parts, ", "))
}

// seedAt measures the seed's hold with conc clients, each submitting a hold
// over HTTP and waiting for the task to be held. A flow's end is the
// commit of its final state, seen from inside the engine (the probe), so
// no polling loads the server; the client's wait adds no request.
func (r *runner) seedAt(ctx context.Context, conc int) (*loadResult, float64, error) {
	dir, cleanup, err := r.tempDir(fmt.Sprintf("seed-%d", conc))
	if err != nil {
		return nil, 0, err
	}
	defer cleanup()
	p := newProbe()
	svc, err := r.o.Start(ctx, ServiceOptions{DB: filepath.Join(dir, "conveyor.db"), Engine: p.configure, SandboxTransport: r.callbacks, StoreCommits: p.storeCommit})
	if err != nil {
		return nil, 0, err
	}
	defer svc.Shutdown()
	hc := newHTTPClient(conc)
	defer hc.CloseIdleConnections()
	r.acks.reset()
	commits, written := p.commits.Load(), diskWritten()
	res := drive(ctx, conc, warmUp(r.o.Size.Duration), r.o.Size.Duration, nil, func(ctx context.Context, w, n int) (time.Time, time.Time, error) {
		ref := fmt.Sprintf("seed%d-%d-%d", conc, w, n)
		ch := p.waiters.expect(ref)
		defer p.waiters.forget(ref)
		start := time.Now()
		if err := submitHold(ctx, hc, svc.URL(), ref); err != nil {
			return start, time.Now(), err
		}
		ev, ok := await(ch, flowLimit, event.settled)
		switch {
		case !ok:
			return start, time.Now(), fmt.Errorf("task %s did not settle within %s", ref, flowLimit)
		case ev.Node != "held":
			return start, ev.At, fmt.Errorf("task %s ended %s in %s, want held", ref, ev.Status, ev.Node)
		}
		return start, ev.At, nil
	})
	if err := failed(res); err != nil {
		return nil, 0, err
	}
	perFlow := float64(p.commits.Load()-commits) / float64(res.total)
	if w := diskWritten(); written >= 0 && w >= 0 {
		// Over the whole drive, warm-up included: flows = commits / commits per flow.
		flows := float64(p.commits.Load()-commits) / perFlow
		r.note("seed @ %d: the store wrote %.1f KiB to disk per flow", conc, float64(w-written)/1024/flows)
	}
	cl8 := p.commitLatencies()
	r.note("seed @ %d: engine commit latency (queue + transaction + fsync) p50 %.1f ms, p99 %.1f ms", conc, ms(quantile(cl8, 0.5)), ms(quantile(cl8, 0.99)))
	if g, ok := p.groupsBetween(res.from, res.to); ok {
		r.note("seed @ %d: %s", conc, g)
	}
	acks := r.acks.between(res.from, res.to)
	at := fmt.Sprintf(" @ %d clients", conc)
	r.cpuNote(fmt.Sprintf("seed @ %d", conc), res)
	r.add(Row{Scenario: Seed, Metric: "completed flows/s" + at, Value: res.rate, Unit: "/s"})
	r.add(Row{Scenario: Seed, Metric: "end-to-end p50" + at, Value: ms(quantile(res.latencies, 0.5)), Unit: "ms"})
	r.add(Row{Scenario: Seed, Metric: "end-to-end p99" + at, Value: ms(quantile(res.latencies, 0.99)), Unit: "ms"})
	r.add(Row{Scenario: Seed, Metric: "callback ack p99" + at, Value: ms(quantile(acks, 0.99)), Unit: "ms"})
	if n := r.acks.refused.Load(); n > 0 {
		r.note("seed @ %d: %d callback attempts were not answered 2xx (the simulator retried them)", conc, n)
	}
	return res, perFlow, nil
}

// share states the seed's throughput as a share of the ceiling's at the
// same concurrency.
func (r *runner) share() {
	for _, conc := range r.o.Size.SeedConcurrency {
		s, c := r.seed[conc], r.ceiling[conc]
		if s == nil || c == nil || c.res.rate == 0 {
			continue
		}
		r.add(Row{Scenario: Seed, Metric: fmt.Sprintf("engine's share of the ceiling @ %d clients", conc),
			Value: 100 * s.rate / c.res.rate, Unit: "%", Target: atLeast(50)})
		if c.limit != nil && c.limit.rate > 0 {
			r.add(Row{Scenario: Seed, Metric: fmt.Sprintf("  of the bare-provider limit @ %d clients", conc), Value: 100 * s.rate / c.limit.rate, Unit: "%"})
		}
	}
}
