package via

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// ExtensionHeader marks every webhook POST as the sandbox's own extension:
// VIA documents no callbacks for holds (holds.md §2.4).
const ExtensionHeader = "X-Sandbox-Extension"

// Webhook is the JSON body the sandbox-only webhook extension POSTs to
// Config.WebhookURL on every status change of a hold (holds.md §2.4
// proposal). Amount is the held amount in tiyin; UpdatedAt is the Unix
// time, in seconds of the sandbox clock, of the change. Receivers should
// dedupe on (HoldID, Status) and treat order as unreliable.
type Webhook struct {
	HoldID     string `json:"holdId"`
	Status     string `json:"status"`
	ExternalID string `json:"externalId"`
	Amount     int64  `json:"amount"`
	UpdatedAt  int64  `json:"updatedAt"`
}

// notice is one status change of one hold to be POSTed to the webhook URL.
type notice struct {
	h      *hold
	at     time.Time
	status string
	body   []byte
	faults Faults
	gate   chan struct{} // closed once the reply that caused it is out
	late   bool          // held back by reorder_webhooks
}

// isFinal reports whether a status ends the hold's story for webhook
// ordering: reorder_webhooks never holds these back.
func isFinal(status string) bool {
	switch status {
	case StatusCreateError, StatusConfirmSuccess, StatusCancelSuccess, StatusExpired:
		return true
	}
	return false
}

// announce schedules the webhook for the hold's current status, if the
// extension is on. extra are the knobs of the request that caused the
// change, on top of Config.Faults and the hold's own knobs. Callers hold
// s.mu. With reorder_webhooks, an intermediate status is held back and
// sent right after the hold's next webhook.
func (s *Server) announce(h *hold, extra Faults, gate chan struct{}) {
	if s.cfg.WebhookURL == "" {
		return
	}
	body, _ := json.Marshal(Webhook{
		HoldID: h.id, Status: h.status, ExternalID: h.req.externalID,
		Amount: h.req.amount, UpdatedAt: h.updatedAt.Unix(),
	})
	n := &notice{
		h: h, at: h.updatedAt, status: h.status, body: body,
		faults: s.cfg.Faults.merge(h.faults).merge(extra),
		gate:   gate,
	}
	if held := h.heldBack; held != nil {
		h.heldBack = nil
		s.schedule(n)
		s.schedule(held)
		return
	}
	if n.faults.ReorderWebhooks && !isFinal(n.status) {
		n.late = true
		h.heldBack = n
		return
	}
	s.schedule(n)
}

// schedule records a webhook and starts its delivery goroutines: one, two
// with duplicate_webhook, none with drop_webhook or after Close. Webhooks
// of one hold go out one after another, in the order scheduled. Callers
// hold s.mu.
func (s *Server) schedule(n *notice) {
	d := Delivery{
		Time:       n.at,
		URL:        s.cfg.WebhookURL,
		HoldID:     n.h.id,
		ExternalID: n.h.req.externalID,
		Status:     n.status,
		Fault:      n.faultNames(),
	}
	if n.faults.DropWebhook || s.closed {
		d.Done = true
		s.deliveries = append(s.deliveries, d)
		return
	}
	copies := 1
	if n.faults.DuplicateWebhook {
		copies = 2
	}
	for range copies {
		s.deliveries = append(s.deliveries, d)
		prev := n.h.lastDelivery
		done := make(chan struct{})
		n.h.lastDelivery = done
		s.wg.Add(1)
		go s.deliver(n, len(s.deliveries)-1, prev, done)
	}
}

// faultNames lists the knobs that shape this webhook, in ParseFaults
// syntax.
func (n *notice) faultNames() string {
	var names []string
	add := func(on bool, name string) {
		if on {
			names = append(names, name)
		}
	}
	add(n.faults.DropWebhook, "drop_webhook")
	add(n.faults.DuplicateWebhook, "duplicate_webhook")
	add(n.faults.DelayWebhook > 0, "delay_webhook="+n.faults.DelayWebhook.String())
	add(n.late, "reorder_webhooks")
	return strings.Join(names, ",")
}

// deliver POSTs one webhook once its predecessor is done and its reply is
// out, retrying non-2xx answers WebhookRetries times with doubling backoff.
func (s *Server) deliver(n *notice, idx int, prev, done chan struct{}) {
	defer s.wg.Done()
	defer close(done)
	defer s.markDone(idx)
	if !s.await(prev) || !s.await(n.gate) || !s.sleep(n.faults.DelayWebhook) {
		return
	}
	backoff := s.cfg.WebhookBackoff
	for attempt := 1; ; attempt++ {
		code, err := s.post(n.body)
		ok := code >= 200 && code < 300
		s.progress(idx, attempt, code, ok)
		s.log.Info("via sandbox webhook",
			"hold_id", n.h.id, "status", n.status, "attempt", attempt,
			"http_status", code, "error", err)
		if ok || attempt > WebhookRetries || !s.sleep(backoff) {
			return
		}
		backoff *= 2
	}
}

// await waits for ch to close (a nil ch is ready at once); false means the
// Server gave up on webhooks first.
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

// sleep waits d; false means the Server gave up on webhooks first.
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
func (s *Server) post(body []byte) (int, error) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, s.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(ExtensionHeader, "webhook")
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
