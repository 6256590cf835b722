package engine_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/store"
)

// BenchmarkEngine_internal submits tasks of the set-and-condition flow from
// many goroutines, with fsync on: every submit is one durable commit carrying
// 2*rounds+2 transitions. It reports tasks/s and durable transitions/s.
func BenchmarkEngine_internal(b *testing.B) {
	for _, rounds := range []int{1, 5} {
		b.Run(fmt.Sprintf("rounds=%d", rounds), func(b *testing.B) {
			bd := setupB(b)
			data := fmt.Sprintf(`{"rounds": %d}`, rounds)
			var transitions atomic.Int64
			b.SetParallelism(64)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					v, _, err := bd.eng.Submit(context.Background(), engine.SubmitRequest{Process: "internal", Data: decodeB(b, data)})
					if err != nil || v.Status != store.StatusSucceeded {
						b.Errorf("submit: %v %v", err, v)
						return
					}
					transitions.Add(int64(2*rounds + 2))
				}
			})
			el := time.Since(start).Seconds()
			b.ReportMetric(float64(b.N)/el, "tasks/s")
			b.ReportMetric(float64(transitions.Load())/el, "transitions/s")
		})
	}
}

// BenchmarkEngine_callback runs tasks through an outbound call to a local
// provider and a callback: submit, call, reply, callback, delay.
func BenchmarkEngine_callback(b *testing.B) {
	bd := setupB(b)
	b.SetParallelism(32)
	b.ResetTimer()
	start := time.Now()
	var transitions atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v, _, err := bd.eng.Submit(context.Background(), engine.SubmitRequest{Process: "payment", Data: decodeB(b, paymentData)})
			if err != nil {
				b.Error(err)
				return
			}
			bd.waitIn(v.ID, "wait", store.StatusWaiting)
			res, err := bd.callback(bd.token(v.ID), `{"status": "ok"}`)
			if err != nil || res.Result != engine.CallbackAccepted {
				b.Errorf("callback %+v %v", res, err)
				return
			}
			transitions.Add(4) // submit, charge->wait, wait->route, route->settle
		}
	})
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/el, "flows/s")
	b.ReportMetric(float64(transitions.Load())/el, "transitions/s")
}
