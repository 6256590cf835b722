package lifecycle

import (
	"strings"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/sandbox/via"
	"github.com/conveyor-dev/conveyor/store"
)

// Engine answers to a merchant command.
const (
	viaAccepted   = engine.CallbackAccepted
	viaDuplicate  = engine.CallbackDuplicate
	viaNotWaiting = engine.CallbackNotWaiting
	viaRefused    = "invalid"
)

func TestViaLifecycle_hold(t *testing.T) {
	t.Parallel()

	t.Run("create answers NEW; polls through CREATE_PENDING with a growing delay to HELD", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{PendingFor: 10 * time.Second})
		id := b.holdSlowly("h-1")

		if got := b.statuses("create") + " / " + b.statuses("info"); got != "NEW / NEW CREATE_PENDING CREATE_PENDING CREATE_SUCCESS" {
			t.Errorf("VIA statuses create / info = %s", got)
		}
		b.checkCalls("create=1 info=4", "h-1")
		s := b.read(id)
		holdID := b.calls("create")[0].HoldID
		for field, want := range map[string]string{
			"hold_id": holdID, "externalId": "h-1", "held_amount": "10000",
			"hold_minutes": "90", "expires_at": "2026-11-22T11:30:00Z", "held_minutes": "0",
		} {
			if got := s.get(field); got != want {
				t.Errorf("%s = %q, want %q", field, got, want)
			}
		}
		if !strings.HasPrefix(holdID, via.HoldIDPrefix) {
			t.Errorf("hold id %q", holdID)
		}
		for _, c := range b.calls("info") {
			if c.HoldID != holdID {
				t.Errorf("info asked about %q, want %q", c.HoldID, holdID)
			}
		}
		// The card token went to VIA and nowhere else.
		if s.has("cardToken") || strings.Contains(string(s.Data), via.CardSuccess) {
			t.Errorf("the card token is still in the task's data: %s", s.Data)
		}
		create := b.proxy.requests(via.PathCreate)[0].Body
		if create["cardToken"] != via.CardSuccess || create["holdTime"] != viaNumber("90") ||
			create["amount"] != viaNumber("10000") || create["currency"] != "UZS" || create["note"] != "deposit" {
			t.Errorf("create body %v", create)
		}
		if acc, _ := create["accounts"].(map[string]any); acc["account"] != "123123" {
			t.Errorf("create sent accounts %v, want the object given", create["accounts"])
		}
	})

	t.Run("holdTime defaults to 1440 minutes and is sent", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("h-2")
		s := b.read(id)
		if s.get("hold_minutes") != "1440" || s.get("expires_at") != "2026-11-23T10:00:00Z" {
			t.Errorf("hold_minutes %s, expires_at %s", s.get("hold_minutes"), s.get("expires_at"))
		}
		if got := b.proxy.requests(via.PathCreate)[0].Body["holdTime"]; got != viaNumber("1440") {
			t.Errorf("create sent holdTime %v", got)
		}
	})

	t.Run("CREATE_ERROR (insufficient funds) is DECLINED", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		v := b.submit("h-3", viaInput(via.CardInsufficientFunds))
		b.expect(v.ID, "wait_5s", "AUTH_PENDING")
		b.advance(5 * time.Second)
		s := b.expect(v.ID, "declined", "DECLINED")
		if s.Status != store.StatusFailed || viaLastError(s) != "CREATE_ERROR" {
			t.Errorf("status %s, last_error %s", s.Status, s.get("last_error"))
		}
		viaCheckAmounts(t, s, "0", "0")
		b.checkCalls("create=1 info=1", "h-3")
		if got := b.statuses("info"); got != "CREATE_ERROR" {
			t.Errorf("info answered %s", got)
		}
	})

	// An unknown token is the customer's card, not our integration: VIA
	// holds nothing and keeps no externalId, an operator could not fix it,
	// and the merchant must ask for another card. So DECLINED, like
	// CREATE_ERROR, with VIA's code in last_error.
	t.Run("an unknown card token is DECLINED at once", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		v := b.submit("h-4", viaInput("VLH8VNWKE3SBBBZEKA86T5PF7UNKNOWN"))
		s := b.expect(v.ID, "declined", "DECLINED")
		if viaLastError(s) != via.CodeCardNotFound || s.get("last_error.description") != "Card not found" {
			t.Errorf("last_error %s", s.get("last_error"))
		}
		viaCheckAmounts(t, s, "0", "0")
		b.checkCalls("create=1", "h-4")
		if c := b.calls("create")[0]; c.HTTPStatus != 404 || c.HoldID != "" {
			t.Errorf("create: HTTP %d, hold %q", c.HTTPStatus, c.HoldID)
		}
	})

	t.Run("a hold pending for ever goes to an operator after 12 polls", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		v := b.submit("h-5", viaInput(via.CardPending))
		b.expect(v.ID, "wait_5s", "AUTH_PENDING")
		delays := []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second,
			30 * time.Second, 30 * time.Second, 30 * time.Second,
			5 * time.Minute, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute}
		for i, d := range delays {
			// Before poll i+1, the task waits exactly d in its delay node.
			s := b.read(v.ID)
			if want := s.Entered.Add(d); !s.TimerAt.Equal(want) {
				t.Fatalf("before poll %d: timer at %v, want %v (in %s)", i+1, s.TimerAt, want, s.Node)
			}
			b.step(v.ID, d)
		}
		s := b.expect(v.ID, "unresolved", "AUTH_PENDING")
		if s.Status != store.StatusEscalated || s.Error == nil || s.Error.Code != "still_pending" ||
			!strings.Contains(s.Error.Description, "CREATE_PENDING after 12 polls") {
			t.Errorf("status %s, error %+v", s.Status, s.Error)
		}
		b.checkCalls("create=1 info=12", "h-5")
	})

	t.Run("an externalId VIA knows with another body is DECLINED", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		first := b.hold("h-6", `"externalId": "order-42"`)
		if got := b.read(first).get("externalId"); got != "order-42" {
			t.Fatalf("externalId %q, want the one given", got)
		}
		v := b.submit("h-7", viaInput(via.CardSuccess, `"externalId": "order-42"`, `"holdTime": 60`))
		s := b.expect(v.ID, "declined", "DECLINED")
		if viaLastError(s) != via.CodeExternalIDConflict {
			t.Errorf("last_error %s", s.get("last_error"))
		}
		b.checkCalls("create=2 info=1", "order-42")
		b.held(first)
	})

	t.Run("without a ref, externalId is the task id", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		v := b.submit("", viaInput(via.CardSuccess))
		b.expect(v.ID, "wait_5s", "AUTH_PENDING")
		b.checkCalls("create=1", v.ID.String())
	})

	t.Run("credentials VIA refuses go to an operator", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{}, via.DefaultClientID, "wrong-secret")
		v := b.submit("h-8", viaInput(via.CardSuccess))
		s := b.expect(v.ID, "escalation", "AUTH_PENDING")
		if s.Status != store.StatusEscalated || s.Error == nil || s.Error.Code != via.CodeUnauthorized || s.Error.Node != "create" {
			t.Errorf("status %s, error %+v", s.Status, s.Error)
		}
		b.checkCalls("create=1", "h-8")
	})
}

func TestViaLifecycle_capture(t *testing.T) {
	t.Parallel()

	t.Run("capture everything", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("c-1")
		b.answered("c-1", `{"command":"capture"}`, viaAccepted)
		s := b.expect(id, "captured", "CAPTURED")
		if s.Status != store.StatusSucceeded || s.get("last_error") != "" {
			t.Errorf("status %s, last_error %s", s.Status, s.get("last_error"))
		}
		viaCheckAmounts(t, s, "10000", "0")
		b.checkCalls("confirm=1 create=1 info=1", "c-1")
		if c := b.calls("confirm")[0]; c.Amount != 10000 || c.Status != via.StatusConfirmSuccess || c.HoldID != s.get("hold_id") {
			t.Errorf("confirm: amount %d, status %s, hold %s", c.Amount, c.Status, c.HoldID)
		}
	})

	t.Run("partial capture releases the rest", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("c-2")
		b.answered("c-2", `{"command":"capture","amount":4000}`, viaAccepted)
		s := b.expect(id, "captured", "CAPTURED")
		viaCheckAmounts(t, s, "4000", "6000")
		if s.get("capture_amount") != "4000" {
			t.Errorf("capture_amount %s", s.get("capture_amount"))
		}
		b.checkCalls("confirm=1 create=1 info=1", "c-2")
		if c := b.calls("confirm")[0]; c.Amount != 4000 {
			t.Errorf("confirm amount %d, want 4000", c.Amount)
		}
	})

	t.Run("CONFIRM_PENDING is polled to CAPTURED", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{PendingFor: 10 * time.Second})
		id := b.holdSlowly("c-3")
		b.answered("c-3", `{"command":"capture","amount":2500}`, viaAccepted)
		s := b.expect(id, "wait_5s", "CAPTURE_PENDING")
		if s.get("polls") != "1" {
			t.Errorf("polls %s, want 1 (reset by the command)", s.get("polls"))
		}
		b.step(id, 5*time.Second)
		b.expect(id, "wait_5s", "CAPTURE_PENDING")
		b.step(id, 5*time.Second)
		s = b.expect(id, "captured", "CAPTURED")
		viaCheckAmounts(t, s, "2500", "7500")
		if got := b.statuses("confirm") + " / " + b.statuses("info"); got !=
			"CONFIRM_PENDING / NEW CREATE_PENDING CREATE_PENDING CREATE_SUCCESS CONFIRM_PENDING CONFIRM_SUCCESS" {
			t.Errorf("VIA statuses confirm / info = %s", got)
		}
		b.checkCalls("confirm=1 create=1 info=6", "c-3")
	})

	t.Run("a capture above the hold is refused before any call", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("c-4")
		for _, body := range []string{
			`{"command":"capture","amount":10001}`,
			`{"command":"capture","amount":0}`,
			`{"command":"capture","amount":-1}`,
			`{"command":"capture","amount":99.5}`,
			`{"command":"capture","amount":"4000"}`,
		} {
			b.answered("c-4", body, viaRefused)
		}
		s := b.held(id)
		if s.has("merchant") || s.has("capture_amount") {
			t.Errorf("a refused command left data: merchant %s, capture_amount %s", s.get("merchant"), s.get("capture_amount"))
		}
		b.checkCalls("create=1 info=1", "c-4")

		// Exactly the held amount is fine.
		b.answered("c-4", `{"command":"capture","amount":10000}`, viaAccepted)
		s = b.expect(id, "captured", "CAPTURED")
		viaCheckAmounts(t, s, "10000", "0")
		b.checkCalls("confirm=1 create=1 info=1", "c-4")
	})

	t.Run("CONFIRM_ERROR goes back to HELD with last_error; a new capture succeeds", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("c-5")
		b.proxy.add(viaRule{path: via.PathConfirm, knobs: "confirm_error"})
		b.answered("c-5", `{"command":"capture","amount":3000}`, viaAccepted)
		s := b.held(id)
		if viaLastError(s) != via.StatusConfirmError || s.get("last_error.description") != "VIA could not capture the hold" {
			t.Errorf("last_error %s", s.get("last_error"))
		}
		if s.has("captured_amount") {
			t.Errorf("captured_amount %s before any capture", s.get("captured_amount"))
		}

		// The same command again, now that the hold is back in HELD, is a new
		// attempt: the merchant retries the failed capture.
		b.checkCalls("confirm=1 create=1 info=1", "c-5")
		b.answered("c-5", `{"command":"capture","amount":3000}`, viaAccepted)
		s = b.expect(id, "captured", "CAPTURED")
		viaCheckAmounts(t, s, "3000", "7000")
		if s.get("last_error") != "" {
			t.Errorf("last_error %s after the capture", s.get("last_error"))
		}
		b.checkCalls("confirm=2 create=1 info=1", "c-5")
		if got := b.statuses("confirm"); got != "CONFIRM_ERROR CONFIRM_SUCCESS" {
			t.Errorf("confirm answered %s", got)
		}
		if c := b.calls("confirm")[0]; c.Faults != "confirm_error" {
			t.Errorf("first confirm ran with knobs %q", c.Faults)
		}
	})

	t.Run("a failed confirm is not resent: info first, then HELD with last_error", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("c-6")
		b.proxy.add(viaRule{path: via.PathConfirm, knobs: "http500"})
		b.answered("c-6", `{"command":"capture"}`, viaAccepted)
		s := b.held(id)
		if viaLastError(s) != "http_500" || s.get("last_error.node") != "confirm" {
			t.Errorf("last_error %s", s.get("last_error"))
		}
		b.checkCalls("confirm=1 create=1 info=2", "c-6")
		if got := b.statuses("info"); got != "CREATE_SUCCESS CREATE_SUCCESS" {
			t.Errorf("info answered %s", got)
		}

		b.answered("c-6", `{"command":"capture","request_id":"retry-1"}`, viaAccepted)
		s = b.expect(id, "captured", "CAPTURED")
		viaCheckAmounts(t, s, "10000", "0")
		b.checkCalls("confirm=2 create=1 info=2", "c-6")
	})

	t.Run("a confirm whose reply is lost is found by info, not sent twice", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("c-7")
		b.proxy.add(viaRule{path: via.PathConfirm, lose: true})
		b.answered("c-7", `{"command":"capture","amount":6000}`, viaAccepted)
		s := b.expect(id, "captured", "CAPTURED")
		viaCheckAmounts(t, s, "6000", "4000")
		b.checkCalls("confirm=1 create=1 info=2", "c-7")
		if got := b.statuses("info"); got != "CREATE_SUCCESS CONFIRM_SUCCESS" {
			t.Errorf("info answered %s", got)
		}
	})
	// The confirm node has on_unknown: a confirm that was in flight when the
	// engine died is not resent; the task asks hold/info first and follows
	// VIA's answer.
	t.Run("a crash after VIA took the confirm: info first, one capture, no resend", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("c-8")
		rule := b.proxy.add(viaRule{path: via.PathConfirm, stall: make(chan struct{}), reached: make(chan struct{})})
		b.answered("c-8", `{"command":"capture","amount":7000}`, viaAccepted)
		b.crash(rule)
		s := b.expect(id, "captured", "CAPTURED")
		viaCheckAmounts(t, s, "7000", "3000")
		b.checkCalls("confirm=1 create=1 info=2", "c-8")
		if got := b.statuses("info"); got != "CREATE_SUCCESS CONFIRM_SUCCESS" {
			t.Errorf("info answered %s", got)
		}
	})
}

func TestViaLifecycle_cancel(t *testing.T) {
	t.Parallel()

	t.Run("cancel releases the hold", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("r-1")
		b.answered("r-1", `{"command":"cancel"}`, viaAccepted)
		s := b.expect(id, "released", "RELEASED")
		if s.Status != store.StatusSucceeded {
			t.Errorf("status %s", s.Status)
		}
		viaCheckAmounts(t, s, "0", "10000")
		b.checkCalls("cancel=1 create=1 info=1", "r-1")
		c := b.calls("cancel")[0]
		if c.Status != via.StatusCancelSuccess || c.HoldID != s.get("hold_id") {
			t.Errorf("cancel: status %s, hold %s", c.Status, c.HoldID)
		}
		// As VIA's docs show: holdId in the query string, no body.
		if r := b.proxy.requests(via.PathCancel)[0]; r.Raw != "" {
			t.Errorf("cancel sent a body: %s", r.Raw)
		}
	})

	t.Run("CANCEL_PENDING is polled to RELEASED", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{PendingFor: 10 * time.Second})
		id := b.holdSlowly("r-2")
		b.answered("r-2", `{"command":"cancel"}`, viaAccepted)
		b.expect(id, "wait_5s", "CANCEL_PENDING")
		b.step(id, 5*time.Second)
		b.expect(id, "wait_5s", "CANCEL_PENDING")
		b.step(id, 5*time.Second)
		s := b.expect(id, "released", "RELEASED")
		viaCheckAmounts(t, s, "0", "10000")
		b.checkCalls("cancel=1 create=1 info=6", "r-2")
	})

	t.Run("CANCEL_ERROR goes back to HELD with last_error; a new cancel succeeds", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("r-3")
		b.proxy.add(viaRule{path: via.PathCancel, knobs: "cancel_error"})
		b.answered("r-3", `{"command":"cancel"}`, viaAccepted)
		s := b.held(id)
		if viaLastError(s) != via.StatusCancelError {
			t.Errorf("last_error %s", s.get("last_error"))
		}
		b.answered("r-3", `{"command":"cancel"}`, viaAccepted) // the same command, a new attempt
		s = b.expect(id, "released", "RELEASED")
		viaCheckAmounts(t, s, "0", "10000")
		if s.get("last_error") != "" {
			t.Errorf("last_error %s after the release", s.get("last_error"))
		}
		b.checkCalls("cancel=2 create=1 info=1", "r-3")
		if got := b.statuses("cancel"); got != "CANCEL_ERROR CANCEL_SUCCESS" {
			t.Errorf("cancel answered %s", got)
		}
	})

	t.Run("after CONFIRM_ERROR the merchant may cancel instead", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("r-4")
		b.proxy.add(viaRule{path: via.PathConfirm, knobs: "confirm_error"})
		b.answered("r-4", `{"command":"capture"}`, viaAccepted)
		b.held(id)
		b.answered("r-4", `{"command":"cancel"}`, viaAccepted)
		s := b.expect(id, "released", "RELEASED")
		viaCheckAmounts(t, s, "0", "10000")
		b.checkCalls("cancel=1 confirm=1 create=1 info=1", "r-4")
	})
}

func TestViaLifecycle_expiry(t *testing.T) {
	t.Parallel()

	t.Run("holdTime runs out while HELD: VIA confirms EXPIRED", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("e-1", `"holdTime": 30`)
		for i := 1; i <= 5; i++ {
			s := b.step(id, 5*time.Minute)
			if s.Node != "wait_command" || s.get("held_minutes") != viaItoa(5*i) {
				t.Fatalf("tick %d: in %s with held_minutes %s", i, s.Node, s.get("held_minutes"))
			}
		}
		b.checkCalls("create=1 info=1", "e-1")
		b.advance(5 * time.Minute)
		s := b.expect(id, "expired", "EXPIRED")
		if s.Status != store.StatusFailed {
			t.Errorf("status %s", s.Status)
		}
		viaCheckAmounts(t, s, "0", "10000")
		b.checkCalls("create=1 info=2", "e-1")
		if got := b.statuses("info"); got != "CREATE_SUCCESS EXPIRED" {
			t.Errorf("info answered %s", got)
		}
		b.ignored("e-1", `{"command":"capture"}`)
	})

	t.Run("a capture racing the expiry ends EXPIRED", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("e-2", `"holdTime": 7`)
		b.step(id, 5*time.Minute)
		b.held(id)
		// VIA's hold lapses at +7m; the task's next tick is at +10m.
		b.advance(2 * time.Minute)
		b.answered("e-2", `{"command":"capture"}`, viaAccepted)
		s := b.expect(id, "expired", "EXPIRED")
		if viaLastError(s) != via.CodeInvalidState {
			t.Errorf("last_error %s", s.get("last_error"))
		}
		viaCheckAmounts(t, s, "0", "10000")
		b.checkCalls("confirm=1 create=1 info=2", "e-2")
		if c := b.calls("confirm")[0]; c.HTTPStatus != 409 {
			t.Errorf("confirm: HTTP %d, want 409", c.HTTPStatus)
		}
	})
}

func TestViaLifecycle_commands(t *testing.T) {
	t.Parallel()

	t.Run("unknown or malformed commands are refused; the task stays HELD", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		id := b.hold("m-1")
		for _, body := range []string{
			`{"command":"refund"}`,
			`{"command":"CAPTURE"}`,
			`{"command":1}`,
			`{"cmd":"capture"}`,
			`{}`,
			`{"command":"cancel","amount":100}`,
			`{"command":"capture","request_id":""}`,
		} {
			b.answered("m-1", body, viaRefused)
		}
		s := b.held(id)
		if s.has("merchant") {
			t.Errorf("a refused command was saved: %s", s.get("merchant"))
		}
		b.checkCalls("create=1 info=1", "m-1")
	})

	t.Run("commands in a state that does not take them move nothing", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{PendingFor: 10 * time.Second})
		v := b.submit("m-2", viaInput(via.CardSuccess))
		b.expect(v.ID, "wait_5s", "AUTH_PENDING")
		b.answered("m-2", `{"command":"capture"}`, viaNotWaiting)
		b.answered("m-2", `{"command":"cancel"}`, viaNotWaiting)
		b.expect(v.ID, "wait_5s", "AUTH_PENDING")
		for _, d := range []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second, 30 * time.Second} {
			b.step(v.ID, d)
		}
		b.held(v.ID)

		// The capture refused while AUTH_PENDING was not kept: it is new now.
		b.answered("m-2", `{"command":"capture"}`, viaAccepted)
		b.expect(v.ID, "wait_5s", "CAPTURE_PENDING")
		b.answered("m-2", `{"command":"cancel"}`, viaNotWaiting)
		b.answered("m-2", `{"command":"capture","request_id":"2"}`, viaNotWaiting)
		b.step(v.ID, 5*time.Second)
		b.step(v.ID, 5*time.Second)
		b.expect(v.ID, "captured", "CAPTURED")

		// A finished hold takes nothing, the command it took included.
		b.ignored("m-2", `{"command":"capture"}`)
		b.ignored("m-2", `{"command":"cancel"}`)
		s := b.expect(v.ID, "captured", "CAPTURED")
		viaCheckAmounts(t, s, "10000", "0")
		b.checkCalls("confirm=1 create=1 info=6", "m-2")
	})

	t.Run("a declined hold takes no command", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		v := b.submit("m-3", viaInput("VLH8VNWKE3SBBBZEKA86T5PF7UNKNOWN"))
		b.expect(v.ID, "declined", "DECLINED")
		b.ignored("m-3", `{"command":"capture"}`)
		b.ignored("m-3", `{"command":"cancel"}`)
		b.checkCalls("create=1", "m-3")
	})
}

func TestViaLifecycle_idempotency(t *testing.T) {
	t.Parallel()

	t.Run("create after a 5xx and a lost reply: same externalId, one hold", func(t *testing.T) {
		t.Parallel()
		b := viaSetup(t, via.Config{})
		b.proxy.add(viaRule{path: via.PathCreate, knobs: "http500"})
		b.proxy.add(viaRule{path: via.PathCreate, lose: true})
		v := b.submit("i-1", viaInput(via.CardSuccess))

		b.waitRetry(v.ID) // VIA answered 500 and did nothing
		b.advance(time.Second)
		b.waitRetry(v.ID) // VIA held the funds; the reply was lost
		b.advance(2 * time.Second)
		s := b.held(v.ID) // VIA replayed the hold: CREATE_SUCCESS, no poll needed

		creates := b.calls("create")
		if len(creates) != 3 {
			t.Fatalf("%d creates, want 3", len(creates))
		}
		if c := creates[0]; c.HTTPStatus != 500 || c.ErrCode != via.CodeInternal || c.HoldID != "" {
			t.Errorf("create 1: HTTP %d %s, hold %q; want 500 INTERNAL_ERROR, no hold", c.HTTPStatus, c.ErrCode, c.HoldID)
		}
		if c := creates[1]; c.HTTPStatus != 200 || c.Status != via.StatusNew || c.Replay || c.HoldID == "" {
			t.Errorf("create 2: HTTP %d %s, replay %v, hold %q; want 200 NEW, a new hold", c.HTTPStatus, c.Status, c.Replay, c.HoldID)
		}
		if c := creates[2]; c.HTTPStatus != 200 || c.Status != via.StatusCreateSuccess || !c.Replay || c.HoldID != creates[1].HoldID {
			t.Errorf("create 3: HTTP %d %s, replay %v, hold %q; want 200 CREATE_SUCCESS replayed for %s",
				c.HTTPStatus, c.Status, c.Replay, c.HoldID, creates[1].HoldID)
		}
		sent := b.proxy.requests(via.PathCreate)
		for i, r := range sent {
			if r.Raw != sent[0].Raw {
				t.Errorf("create %d sent another body:\n%s\nwant\n%s", i+1, r.Raw, sent[0].Raw)
			}
		}
		if s.get("hold_id") != creates[1].HoldID {
			t.Errorf("hold_id %s, want %s", s.get("hold_id"), creates[1].HoldID)
		}

		b.answered("i-1", `{"command":"capture"}`, viaAccepted)
		b.expect(v.ID, "captured", "CAPTURED")
		b.checkCalls("confirm=1 create=3", "i-1")
	})
}
