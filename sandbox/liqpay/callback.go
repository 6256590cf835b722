package liqpay

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// notice is one status change of one payment to be POSTed to its
// server_url (holds.md §1.8).
type notice struct {
	p      *payment
	url    string
	at     time.Time
	status string
	body   map[string]any // the payment object at the change
	faults Faults
	gate   chan struct{} // closed once the reply that caused it is out
	late   bool          // held back by reorder_callbacks
}

// isFinal reports whether a status ends the payment's story for callback
// ordering: reorder_callbacks never holds these back.
func isFinal(status string) bool {
	switch status {
	case statusSuccess, statusFailure, statusError, statusReversed:
		return true
	}
	return false
}

// announce schedules the callback for the payment's current status, if the
// hold named a server_url. extra are the knobs of the request that caused
// the change, on top of Config.Faults and the hold's own knobs. Callers hold
// s.mu. With reorder_callbacks, an intermediate status is held back and sent
// right after the payment's next callback.
func (s *Server) announce(p *payment, extra Faults, gate chan struct{}) {
	if p.serverURL == "" {
		return
	}
	n := &notice{
		p:      p,
		url:    p.serverURL,
		at:     p.ended,
		status: p.status,
		body:   p.object(),
		faults: s.cfg.Faults.merge(p.faults).merge(extra),
		gate:   gate,
	}
	if held := p.heldBack; held != nil {
		p.heldBack = nil
		s.schedule(n)
		s.schedule(held)
		return
	}
	if n.faults.ReorderCallbacks && !isFinal(n.status) {
		n.late = true
		p.heldBack = n
		return
	}
	s.schedule(n)
}

// schedule records a callback and starts its delivery goroutines: one, two
// with duplicate_callback, none with drop_callback. Deliveries of one
// payment go out one after another, in the order scheduled. Callers hold
// s.mu.
func (s *Server) schedule(n *notice) {
	d := Delivery{
		Time:      n.at,
		URL:       n.url,
		OrderID:   n.p.key.orderID,
		PaymentID: n.p.id,
		Status:    n.status,
		Fault:     n.faultNames(),
	}
	if n.faults.DropCallback || s.closed {
		d.Done = true
		s.deliveries = append(s.deliveries, d)
		return
	}
	form, err := s.envelope(n)
	if err != nil {
		s.log.Error("liqpay sandbox callback not sent", "order_id", d.OrderID, "error", err)
		d.Done = true
		s.deliveries = append(s.deliveries, d)
		return
	}
	copies := 1
	if n.faults.DuplicateCallback {
		copies = 2
	}
	for range copies {
		s.deliveries = append(s.deliveries, d)
		prev := n.p.lastDelivery
		done := make(chan struct{})
		n.p.lastDelivery = done
		s.wg.Add(1)
		go s.deliver(n, form, len(s.deliveries)-1, prev, done)
	}
}

// faultNames lists the knobs that shape this callback, in ParseFaults
// syntax.
func (n *notice) faultNames() string {
	var names []string
	add := func(on bool, name string) {
		if on {
			names = append(names, name)
		}
	}
	add(n.faults.DropCallback, "drop_callback")
	add(n.faults.DuplicateCallback, "duplicate_callback")
	add(n.faults.BadSignatureCallback, "bad_signature_callback")
	add(n.late, "reorder_callbacks")
	return strings.Join(names, ",")
}

// envelope encodes the callback body as the form LiqPay posts: data and
// signature, signed with the merchant's private key (or, with
// bad_signature_callback, with a wrong one).
func (s *Server) envelope(n *notice) (string, error) {
	data, signature, err := Encode(n.p.privateKey, n.body)
	if err != nil {
		return "", err
	}
	if n.faults.BadSignatureCallback {
		signature = Sign("not-"+n.p.privateKey, data)
	}
	// url.Values{"data": {data}, "signature": {signature}}.Encode(), directly
	return "data=" + url.QueryEscape(data) + "&signature=" + url.QueryEscape(signature), nil
}

// deliver POSTs one callback once its predecessor is done and its reply is
// out, retrying non-2xx answers CallbackRetries times with doubling backoff.
func (s *Server) deliver(n *notice, form string, idx int, prev, done chan struct{}) {
	defer s.wg.Done()
	defer close(done)
	defer s.markDone(idx)
	if !s.await(prev) || !s.await(n.gate) || !s.sleep(s.callbackDelay(n.faults)) {
		return
	}
	backoff := s.cfg.CallbackBackoff
	for attempt := 1; ; attempt++ {
		code, err := s.post(n.url, form)
		ok := code >= 200 && code < 300
		s.progress(idx, attempt, code, ok)
		s.logDelivery(n, attempt, code, err)
		if ok || attempt > CallbackRetries || !s.sleep(backoff) {
			return
		}
		backoff *= 2
	}
}

// logDelivery logs one delivery attempt, with its error if it had one.
func (s *Server) logDelivery(n *notice, attempt, code int, err error) {
	attrs := append(make([]slog.Attr, 0, 6),
		slog.String("url", n.url), slog.String("order_id", n.p.key.orderID), slog.String("status", n.status),
		slog.Int("attempt", attempt), slog.Int("http_status", code))
	if err != nil {
		attrs = append(attrs, slog.Any("error", err))
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "liqpay sandbox callback", attrs...)
}

// callbackDelay is the wait before a callback's first attempt.
func (s *Server) callbackDelay(f Faults) time.Duration {
	return override(s.cfg.CallbackDelay, f.DelayCallback)
}

// await waits for ch to close (a nil ch is ready at once); false means the
// Server gave up on callbacks first.
func (s *Server) await(ch chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// sleep waits d; false means the Server gave up on callbacks first.
func (s *Server) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// post sends one attempt and returns the receiver's HTTP status, 0 when it
// did not answer.
func (s *Server) post(target, form string) (int, error) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, target, strings.NewReader(form))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// progress records the outcome of one delivery attempt.
func (s *Server) progress(idx, attempt, code int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := &s.deliveries[idx]
	d.Attempts, d.HTTPStatus, d.Delivered = attempt, code, ok
}

// markDone records that the sandbox has finished with a delivery.
func (s *Server) markDone(idx int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliveries[idx].Done = true
}
