package lifecycle

import (
	"strings"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
	"github.com/conveyor-dev/conveyor/store"
)

func TestLifecycle_capture(t *testing.T) {
	t.Parallel()

	t.Run("success card: held, captured in full", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		v := b.submit(lifecycle, "o-1", holdInput(liqpay.CardSuccess, "o-1"))
		s := b.waitHeld(v.ID)
		if s.get("held_amount") != "10.5" || s.get("payment_id") == "" || s.get("liqpay_order_id") != "o-1" {
			t.Errorf("held: held_amount %q, payment_id %q, liqpay_order_id %q", s.get("held_amount"), s.get("payment_id"), s.get("liqpay_order_id"))
		}
		for _, secret := range []string{liqpay.CardSuccess, `"card_cvv"`} {
			if strings.Contains(string(s.Data), secret) {
				t.Errorf("stored task data holds %s", secret)
			}
		}

		b.accept("o-1", `{"command":"capture"}`)
		s = b.waitIn(v.ID, "captured", store.StatusSucceeded)
		if got := s.get("hold_state") + " " + s.get("captured_amount") + " " + s.get("released_amount"); got != "CAPTURED 10.5 0" {
			t.Errorf("hold_state captured released = %s, want CAPTURED 10.5 0", got)
		}
		b.checkCalls("hold=1 hold_completion=1", "o-1")
		if c := b.calls("hold_completion")[0]; c.Status != "success" {
			t.Errorf("hold_completion answered %s", c.Status)
		}
	})

	t.Run("partial capture releases the rest", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		v := b.submit(lifecycle, "o-2", holdInput(liqpay.CardSuccess, "o-2"))
		b.waitHeld(v.ID)
		b.accept("o-2", `{"command":"capture","amount":"4.20"}`)
		s := b.waitIn(v.ID, "captured", store.StatusSucceeded)
		if got := s.get("captured_amount") + " " + s.get("released_amount"); got != "4.2 6.3" {
			t.Errorf("captured released = %s, want 4.2 6.3", got)
		}
		b.checkCalls("hold=1 hold_completion=1", "o-2")
	})

	t.Run("a capture the hold cannot cover is refused before any call", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		v := b.submit(lifecycle, "o-3", holdInput(liqpay.CardSuccess, "o-3"))
		b.waitHeld(v.ID)
		for _, body := range []string{
			`{"command":"capture","amount":"10.51"}`,
			`{"command":"capture","amount":11}`,
			`{"command":"capture","amount":"0"}`,
			`{"command":"capture","amount":"-1"}`,
			`{"command":"capture","amount":"1.234"}`,
			`{"command":"capture","amount":"ten"}`,
		} {
			b.refuse("o-3", body)
		}
		s := b.waitHeld(v.ID)
		if s.get("merchant") != "" {
			t.Errorf("a refused command was saved: %s", s.get("merchant"))
		}
		b.checkCalls("hold=1", "o-3")

		// Exactly the held amount is fine, as a JSON number too.
		b.accept("o-3", `{"command":"capture","amount":10.5}`)
		s = b.waitIn(v.ID, "captured", store.StatusSucceeded)
		if got := s.get("captured_amount") + " " + s.get("released_amount"); got != "10.5 0" {
			t.Errorf("captured released = %s, want 10.5 0", got)
		}
	})
}

func TestLifecycle_cancel(t *testing.T) {
	t.Parallel()
	b := setup(t, liqpay.Config{})
	v := b.submit(lifecycle, "o-4", holdInput(liqpay.CardSuccess, "o-4"))
	b.waitHeld(v.ID)
	b.accept("o-4", `{"command":"cancel"}`)
	s := b.waitIn(v.ID, "released", store.StatusSucceeded)
	if got := s.get("hold_state") + " " + s.get("captured_amount") + " " + s.get("released_amount"); got != "RELEASED 0 10.5" {
		t.Errorf("hold_state captured released = %s, want RELEASED 0 10.5", got)
	}
	b.checkCalls("hold=1 refund=1", "o-4")
	if c := b.calls("refund")[0]; c.Status != "reversed" {
		t.Errorf("refund answered %s", c.Status)
	}
}

func TestLifecycle_confirmation(t *testing.T) {
	t.Parallel()

	t.Run("OTP card: a wrong code keeps it waiting, the right one holds", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		v := b.submit(lifecycle, "o-5", holdInput(liqpay.CardOTP, "o-5"))
		s := b.waitIn(v.ID, "wait_code", store.StatusWaiting)
		if s.get("hold_state") != "ACTION_REQUIRED" || s.get("required_action") != "otp_verify" || s.get("confirm_token") == "" {
			t.Fatalf("hold_state %q, required_action %q, confirm_token set %v",
				s.get("hold_state"), s.get("required_action"), s.get("confirm_token") != "")
		}
		b.refuse("o-5", `{"command":"capture"}`)
		b.refuse("o-5", `{"command":"otp"}`)
		b.refuse("o-5", `{"command":"otp","otp":"12"}`)

		b.accept("o-5", `{"command":"otp","otp":"000000"}`)
		s = b.waitFor(v.ID, "back in wait_code after the wrong OTP", func(s snapshot) bool {
			return s.Node == "wait_code" && s.Status == store.StatusWaiting && s.get("last_error.code") == "err_sms_otp"
		})
		if s.get("hold_state") != "ACTION_REQUIRED" || s.get("merchant") != "" {
			t.Errorf("after a wrong OTP: hold_state %q, merchant %q (the code must be forgotten)", s.get("hold_state"), s.get("merchant"))
		}

		b.accept("o-5", `{"command":"otp","otp":"123456"}`)
		s = b.waitHeld(v.ID)
		if s.get("last_error") != "" || s.get("confirm_token") != "" || s.get("merchant") != "" {
			t.Errorf("held: last_error %q, confirm_token %q, merchant %q; want all cleared", s.get("last_error"), s.get("confirm_token"), s.get("merchant"))
		}
		b.checkCalls("confirm=2 hold=1", "o-5")
		b.accept("o-5", `{"command":"capture"}`)
		b.waitIn(v.ID, "captured", store.StatusSucceeded)
	})

	t.Run("OTP card: the third wrong code declines", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		v := b.submit(lifecycle, "o-6", holdInput(liqpay.CardOTP, "o-6"))
		b.waitIn(v.ID, "wait_code", store.StatusWaiting)
		for i, otp := range []string{"000001", "000002"} {
			b.accept("o-6", `{"command":"otp","otp":"`+otp+`"}`)
			b.waitFor(v.ID, "waiting for another code", func(s snapshot) bool {
				return s.Node == "wait_code" && s.Status == store.StatusWaiting && len(b.calls("confirm")) == i+1
			})
		}
		b.accept("o-6", `{"command":"otp","otp":"000003"}`)
		s := b.waitIn(v.ID, "declined", store.StatusFailed)
		if s.get("hold_state") != "DECLINED" || s.get("last_error.code") != "err_sms_otp" {
			t.Errorf("hold_state %q, last_error %s", s.get("hold_state"), s.get("last_error"))
		}
		b.checkCalls("confirm=3 hold=1", "o-6")
	})

	t.Run("OTP card: no code in 10 minutes declines", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		v := b.submit(lifecycle, "o-7", holdInput(liqpay.CardOTP, "o-7"))
		b.waitIn(v.ID, "wait_code", store.StatusWaiting)
		b.advance(9 * time.Minute)
		b.waitIn(v.ID, "wait_code", store.StatusWaiting)
		b.advance(time.Minute)
		s := b.waitIn(v.ID, "declined", store.StatusFailed)
		if s.get("hold_state") != "DECLINED" || s.get("last_error.code") != "expired_otp" {
			t.Errorf("hold_state %q, last_error %s", s.get("hold_state"), s.get("last_error"))
		}
		b.checkCalls("hold=1", "o-7")
	})

	t.Run("3-D Secure card: confirmed once the customer is back", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		v := b.submit(lifecycle, "o-8", holdInput(liqpay.Card3DS, "o-8"))
		s := b.waitIn(v.ID, "wait_code", store.StatusWaiting)
		if s.get("required_action") != "3ds_verify" || !strings.Contains(s.get("redirect_to"), "/3ds/") {
			t.Fatalf("required_action %q, redirect_to %q", s.get("required_action"), s.get("redirect_to"))
		}
		b.accept("o-8", `{"command":"otp"}`)
		b.waitHeld(v.ID)
		b.checkCalls("confirm=1 hold=1", "o-8")
	})

	t.Run("CVV card: the code is sent as card_cvv", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		v := b.submit(lifecycle, "o-9", holdInput(liqpay.CardCVV, "o-9"))
		s := b.waitIn(v.ID, "wait_code", store.StatusWaiting)
		if s.get("required_action") != "cvv_verify" {
			t.Fatalf("required_action %q", s.get("required_action"))
		}
		b.refuse("o-9", `{"command":"otp","otp":"12345"}`)
		b.accept("o-9", `{"command":"otp","otp":"321"}`)
		b.waitHeld(v.ID)
		b.checkCalls("confirm=1 hold=1", "o-9")
	})
}

func TestLifecycle_declined(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ card, code string }{
		{liqpay.CardLimit, "limit"},
		{liqpay.CardInsufficient, "9859"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			t.Parallel()
			b := setup(t, liqpay.Config{})
			v := b.submit(lifecycle, "d-"+tc.code, holdInput(tc.card, "d-"+tc.code))
			s := b.waitIn(v.ID, "declined", store.StatusFailed)
			if s.get("hold_state") != "DECLINED" || s.get("last_error.code") != tc.code {
				t.Errorf("hold_state %q, last_error %s; want DECLINED, %s", s.get("hold_state"), s.get("last_error"), tc.code)
			}
			b.checkCalls("hold=1", "d-"+tc.code)
			b.late("d-"+tc.code, `{"command":"capture"}`)
			b.checkCalls("hold=1", "d-"+tc.code)
		})
	}
}

func TestLifecycle_expiry(t *testing.T) {
	t.Parallel()

	t.Run("validity runs out: released at LiqPay, EXPIRED", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		v := b.submit(lifecycle, "e-1", holdInput(liqpay.CardSuccess, "e-1", `"hold_validity_hours": 3`))
		b.waitHeld(v.ID)
		b.advance(time.Hour)
		b.advance(time.Hour)
		s := b.waitHeld(v.ID)
		if s.get("held_hours") != "2" {
			t.Errorf("held_hours %s after two hours", s.get("held_hours"))
		}
		b.advance(time.Hour)
		s = b.waitIn(v.ID, "expired", store.StatusFailed)
		if got := s.get("hold_state") + " " + s.get("captured_amount") + " " + s.get("released_amount"); got != "EXPIRED 0 10.5" {
			t.Errorf("hold_state captured released = %s, want EXPIRED 0 10.5", got)
		}
		b.checkCalls("hold=1 refund=1 status=1", "e-1")
		b.late("e-1", `{"command":"capture"}`)
		b.checkCalls("hold=1 refund=1 status=1", "e-1")
	})

	t.Run("the validity is kept within 1 to 720 hours", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		long := b.submit(lifecycle, "e-4", holdInput(liqpay.CardSuccess, "e-4", `"hold_validity_hours": 5000`))
		short := b.submit(lifecycle, "e-5", holdInput(liqpay.CardSuccess, "e-5", `"hold_validity_hours": 0`))
		if got := b.waitHeld(long.ID).get("validity_hours"); got != "720" {
			t.Errorf("5000 hours asked: validity_hours %s, want 720", got)
		}
		if got := b.waitHeld(short.ID).get("validity_hours"); got != "1" {
			t.Errorf("0 hours asked: validity_hours %s, want 1", got)
		}
		b.advance(time.Hour)
		b.waitIn(short.ID, "expired", store.StatusFailed)
		b.waitHeld(long.ID)
	})

	t.Run("the default validity is 7 days", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		v := b.submit(lifecycle, "e-2", holdInput(liqpay.CardSuccess, "e-2"))
		b.waitHeld(v.ID)
		for range 7*24 - 1 {
			b.advance(time.Hour)
		}
		b.waitHeld(v.ID)
		b.advance(time.Hour)
		b.waitIn(v.ID, "expired", store.StatusFailed)
	})

	t.Run("a capture after LiqPay dropped the hold ends EXPIRED", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{HoldValidity: 2 * time.Hour})
		v := b.submit(lifecycle, "e-3", holdInput(liqpay.CardSuccess, "e-3", `"hold_validity_hours": 720`))
		b.waitHeld(v.ID)
		for range 3 {
			b.advance(time.Hour)
		}
		b.accept("e-3", `{"command":"capture"}`)
		s := b.waitIn(v.ID, "expired", store.StatusFailed)
		if s.get("hold_state") != "EXPIRED" || s.get("last_error.code") != "payment_err_status" {
			t.Errorf("hold_state %q, last_error %s", s.get("hold_state"), s.get("last_error"))
		}
		b.checkCalls("hold=1 hold_completion=1 status=1", "e-3")
	})
}

func TestLifecycle_callbacks(t *testing.T) {
	t.Parallel()

	// pending=30s makes the hold answer processing; the real outcome comes
	// with a callback (on Sweep) or by status once 30s have passed.

	t.Run("a missing callback is replaced by status polling", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.faults.add(rule{action: "hold", knobs: "pending=30s,drop_callback"})
		v := b.submit(lifecycle, "c-1", holdInput(liqpay.CardSuccess, "c-1"))
		s := b.waitIn(v.ID, "wait_provider", store.StatusWaiting)
		if s.get("hold_state") != "AUTH_PENDING" {
			t.Fatalf("hold_state %q, want AUTH_PENDING", s.get("hold_state"))
		}
		b.advance(30 * time.Second)
		b.sandbox.Sweep()
		b.advance(30 * time.Second)
		s = b.waitHeld(v.ID)
		if s.get("polls") != "1" {
			t.Errorf("polls %s, want 1", s.get("polls"))
		}
		b.checkCalls("hold=1 status=1", "c-1")
		for _, d := range b.sandbox.Callbacks() {
			if d.Attempts != 0 {
				t.Errorf("a dropped callback was sent: %+v", d)
			}
		}
		if n := len(b.receiver.seen()); n != 0 {
			t.Errorf("the receiver saw %d callbacks", n)
		}
	})

	t.Run("duplicated callbacks are taken once", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.faults.add(rule{action: "hold", knobs: "pending=30s,duplicate_callback"})
		v := b.submit(lifecycle, "c-2", holdInput(liqpay.CardSuccess, "c-2"))
		b.waitIn(v.ID, "wait_provider", store.StatusWaiting)
		b.deliveriesDone(2) // processing, twice
		if b.receiver.count(engine.CallbackDuplicate) != 1 {
			t.Errorf("receiver answers %+v; want one duplicate", b.receiver.seen())
		}
		b.advance(30 * time.Second)
		b.sandbox.Sweep() // hold_wait, twice
		b.waitHeld(v.ID)
		b.deliveriesDone(4)
		s := b.waitHeld(v.ID)
		if s.get("polls") != "0" {
			t.Errorf("polls %s, want 0: the callback decided", s.get("polls"))
		}
		b.checkCalls("hold=1", "c-2")
		b.accept("c-2", `{"command":"capture"}`)
		b.waitIn(v.ID, "captured", store.StatusSucceeded)
		b.checkCalls("hold=1 hold_completion=1", "c-2")
	})

	t.Run("callbacks with a bad signature are refused; polling decides", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.faults.add(rule{action: "hold", knobs: "pending=30s,bad_signature_callback"})
		v := b.submit(lifecycle, "c-3", holdInput(liqpay.CardSuccess, "c-3"))
		b.waitIn(v.ID, "wait_provider", store.StatusWaiting)
		b.advance(30 * time.Second)
		b.sandbox.Sweep()
		for _, d := range b.deliveriesDone(2) {
			if d.Delivered || d.HTTPStatus != 401 || d.Attempts != liqpay.CallbackRetries+1 {
				t.Errorf("a badly signed callback was not refused every time: %+v", d)
			}
		}
		s := b.waitIn(v.ID, "wait_provider", store.StatusWaiting)
		if s.get("hold_state") != "AUTH_PENDING" {
			t.Fatalf("hold_state %q after forged callbacks", s.get("hold_state"))
		}
		if n := b.receiver.count("unauthorized"); n != len(b.receiver.seen()) || n == 0 {
			t.Errorf("receiver answers %+v; want only unauthorized", b.receiver.seen())
		}
		b.advance(30 * time.Second)
		b.waitHeld(v.ID)
		b.checkCalls("hold=1 status=1", "c-3")
	})

	t.Run("a pending hold is resolved by polling", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.faults.add(rule{action: "hold", knobs: "pending=3m"})
		v := b.submit(lifecycle, "c-4", holdInput(liqpay.CardSuccess, "c-4"))
		b.waitIn(v.ID, "wait_provider", store.StatusWaiting)
		b.deliveriesDone(1) // processing: taken, the task waits again
		for poll := 1; poll <= 2; poll++ {
			b.advance(time.Minute)
			b.waitFor(v.ID, "waiting after a poll", func(s snapshot) bool {
				return s.Node == "wait_provider" && s.Status == store.StatusWaiting && len(b.calls("status")) == poll
			})
		}
		b.advance(time.Minute)
		s := b.waitHeld(v.ID)
		if s.get("polls") != "3" {
			t.Errorf("polls %s, want 3", s.get("polls"))
		}
		b.checkCalls("hold=1 status=3", "c-4")
	})

	t.Run("a hold pending for ever is escalated after 15 polls", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.faults.add(rule{action: "hold", knobs: "pending"})
		v := b.submit(lifecycle, "c-5", holdInput(liqpay.CardSuccess, "c-5"))
		b.waitIn(v.ID, "wait_provider", store.StatusWaiting)
		b.deliveriesDone(1)
		for poll := 1; poll <= 15; poll++ {
			b.advance(time.Minute)
			b.waitFor(v.ID, "waiting after a poll", func(s snapshot) bool {
				return s.Node == "wait_provider" && s.Status == store.StatusWaiting && len(b.calls("status")) == poll
			})
		}
		b.advance(time.Minute)
		s := b.waitIn(v.ID, "unresolved", store.StatusEscalated)
		if s.get("hold_state") != "AUTH_PENDING" || s.Error.Code != "still_pending" {
			t.Errorf("hold_state %q, error %+v", s.get("hold_state"), s.Error)
		}
		if !strings.Contains(s.Error.Description, "processing after 15 status polls") {
			t.Errorf("description %q", s.Error.Description)
		}
		b.checkCalls("hold=1 status=15", "c-5")
	})
}

func TestLifecycle_providerFaults(t *testing.T) {
	t.Parallel()

	t.Run("hold answered 5xx: retried, then escalated", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.faults.add(rule{action: "hold", knobs: "http500"})
		v := b.submit(lifecycle, "f-1", holdInput(liqpay.CardSuccess, "f-1"))
		for range 4 {
			b.waitRetry(v.ID, "hold")
			b.advance(time.Minute)
		}
		s := b.waitIn(v.ID, "escalation", store.StatusEscalated)
		if s.get("hold_state") != "AUTH_PENDING" || s.Error.Code != "http_500" || s.Error.Node != "hold" {
			t.Errorf("hold_state %q, error %+v", s.get("hold_state"), s.Error)
		}
		b.checkCalls("hold=5", "f-1")
		for _, c := range b.calls("hold") {
			if c.HTTPStatus != 500 {
				t.Errorf("hold answered %d", c.HTTPStatus)
			}
		}
	})

	t.Run("capture answered 5xx: back to HELD with last_error, then captured", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		v := b.submit(lifecycle, "f-2", holdInput(liqpay.CardSuccess, "f-2"))
		b.waitHeld(v.ID)
		b.faults.add(rule{action: "hold_completion", knobs: "http500"})
		b.accept("f-2", `{"command":"capture","amount":"5"}`)
		s := b.waitIn(v.ID, "capture", store.StatusActive)
		if s.get("hold_state") != "CAPTURE_PENDING" {
			t.Errorf("hold_state %q while capturing", s.get("hold_state"))
		}
		for range 4 {
			b.waitRetry(v.ID, "capture")
			b.advance(time.Minute)
		}
		s = b.waitHeld(v.ID)
		if s.get("last_error.code") != "http_500" || s.get("last_error.node") != "capture" {
			t.Errorf("last_error %s", s.get("last_error"))
		}
		b.checkCalls("hold=1 hold_completion=5 status=1", "f-2")

		b.faults.clear()
		// The same command again, now that the hold is back in HELD, is the
		// merchant's new attempt.
		b.accept("f-2", `{"command":"capture","amount":"5"}`)
		s = b.waitIn(v.ID, "captured", store.StatusSucceeded)
		if got := s.get("captured_amount") + " " + s.get("released_amount") + " " + s.get("last_error"); got != "5 5.5 " {
			t.Errorf("captured released last_error = %q, want 5 5.5 and none", got)
		}
		b.checkCalls("hold=1 hold_completion=6 status=1", "f-2")
	})

	t.Run("a hold whose reply was lost is found by order_id, not made twice", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.faults.add(rule{action: "hold", lose: true, times: 1})
		v := b.submit(lifecycle, "f-3", holdInput(liqpay.CardSuccess, "f-3"))
		b.waitRetry(v.ID, "hold")
		b.advance(time.Minute)
		b.waitHeld(v.ID)
		b.checkCalls("hold=2 status=1", "f-3")
		if c := b.calls("hold")[1]; c.ErrCode != "order_id_duplicate" {
			t.Errorf("second hold: %s, want order_id_duplicate", c.ErrCode)
		}
	})

	t.Run("an order_id another payment holds declines", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		first := b.submit(lifecycle, "f-4a", holdInput(liqpay.CardSuccess, "f-4"))
		b.waitHeld(first.ID)
		other := b.submit(lifecycle, "f-4b", strings.Replace(holdInput(liqpay.CardSuccess, "f-4"), `"10.50"`, `"20"`, 1))
		s := b.waitIn(other.ID, "declined", store.StatusFailed)
		if s.get("hold_state") != "DECLINED" || s.get("last_error.code") != "order_id_duplicate" {
			t.Errorf("hold_state %q, last_error %s", s.get("hold_state"), s.get("last_error"))
		}
		b.waitHeld(first.ID)
		b.checkCalls("hold=2 status=1", "f-4")
	})
}

func TestLifecycle_commands(t *testing.T) {
	t.Parallel()
	b := setup(t, liqpay.Config{})

	// AUTH_PENDING: LiqPay's callback node takes nothing but signed envelopes.
	b.faults.add(rule{action: "hold", knobs: "pending"})
	pending := b.submit(lifecycle, "m-1", holdInput(liqpay.CardSuccess, "m-1"))
	b.waitIn(pending.ID, "wait_provider", store.StatusWaiting)
	b.faults.clear()
	for _, body := range []string{`{"command":"capture"}`, `{"command":"cancel"}`, `{"command":"otp","otp":"123456"}`} {
		if res, err := b.command("m-1", body); err == nil {
			t.Errorf("%s while AUTH_PENDING: %q, want refused", body, res.Result)
		}
	}
	b.waitIn(pending.ID, "wait_provider", store.StatusWaiting)

	// ACTION_REQUIRED: only otp.
	otp := b.submit(lifecycle, "m-2", holdInput(liqpay.CardOTP, "m-2"))
	b.waitIn(otp.ID, "wait_code", store.StatusWaiting)
	for _, body := range []string{`{"command":"capture"}`, `{"command":"cancel"}`, `{"command":"refund"}`, `{}`, `not json`} {
		if res, err := b.command("m-2", body); err == nil {
			t.Errorf("%s while ACTION_REQUIRED: %q, want refused", body, res.Result)
		}
	}
	b.waitIn(otp.ID, "wait_code", store.StatusWaiting)

	// HELD: only capture and cancel.
	held := b.submit(lifecycle, "m-3", holdInput(liqpay.CardSuccess, "m-3"))
	b.waitHeld(held.ID)
	for _, body := range []string{`{"command":"otp","otp":"123456"}`, `{"command":"refund"}`, `{"command":"CAPTURE"}`, `{"amount":"1"}`, `{"command":7}`} {
		b.refuse("m-3", body)
	}
	b.waitHeld(held.ID)

	// CAPTURED: the same command again is a duplicate, another one is late.
	b.accept("m-3", `{"command":"capture"}`)
	b.waitIn(held.ID, "captured", store.StatusSucceeded)
	if res, err := b.command("m-3", `{"command":"capture"}`); err != nil || res.Result != engine.CallbackDuplicate || res.Node != "captured" {
		t.Errorf("capture again: %+v, %v; want duplicate in captured", res, err)
	}
	if res, err := b.command("m-3", `{"command":"cancel"}`); err != nil || res.Result != engine.CallbackNotWaiting {
		t.Errorf("cancel after capture: %+v, %v; want not_waiting", res, err)
	}
	if n := len(b.calls("hold_completion")) + len(b.calls("refund")) + len(b.calls("confirm")); n != 1 {
		t.Errorf("%d capture/cancel/confirm calls, want the one capture", n)
	}
	if res, err := b.command("nope", `{"command":"capture"}`); err != nil || res.Result != engine.CallbackUnknown {
		t.Errorf("unknown ref: %+v, %v", res, err)
	}
}

// The seed's hold and its two sibling processes, chained as Corezoid's
// folder chains them: hold -> OTP confirm -> hold completion.
func TestSiblings(t *testing.T) {
	t.Parallel()

	t.Run("hold, OTP confirm, completion of part", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		hold := b.submit(holdOnly, "s-1", holdInput(liqpay.CardOTP, "s-1"))
		s := b.waitIn(hold.ID, "otp_verify", store.StatusSucceeded)
		token := s.get("reply.token")
		if token == "" {
			t.Fatalf("the hold left no token: %s", s.get("reply"))
		}

		conf := b.submit(otpConfirm, "", `{"token": "`+token+`", "otp": "123456"}`)
		s = b.waitIn(conf.ID, "confirmed", store.StatusSucceeded)
		if s.get("status") != "hold_wait" || s.get("payment_id") == "" {
			t.Errorf("confirm: status %q, payment_id %q", s.get("status"), s.get("payment_id"))
		}
		if strings.Contains(string(s.Data), token) || strings.Contains(string(s.Data), "123456") {
			t.Errorf("the confirm task keeps the token or the OTP: %s", s.Data)
		}

		done := b.submit(completion, "", `{"order_id": "s-1", "amount": "3.25"}`)
		s = b.waitIn(done.ID, "completed", store.StatusSucceeded)
		if s.get("status") != "success" || s.get("captured_amount") != "3.25" {
			t.Errorf("completion: status %q, captured_amount %q", s.get("status"), s.get("captured_amount"))
		}
		b.checkCalls("confirm=1 hold=1 hold_completion=1", "s-1")
	})

	t.Run("a wrong OTP and an excessive completion escalate", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		hold := b.submit(holdOnly, "s-2", holdInput(liqpay.CardOTP, "s-2"))
		token := b.waitIn(hold.ID, "otp_verify", store.StatusSucceeded).get("reply.token")

		conf := b.submit(otpConfirm, "", `{"token": "`+token+`", "otp": "654321"}`)
		s := b.waitIn(conf.ID, "escalation", store.StatusEscalated)
		if s.Error.Code != "err_sms_otp" || s.get("err_code") != "err_sms_otp" || s.get("err_description") == "" {
			t.Errorf("wrong OTP: error %+v, err_code %q", s.Error, s.get("err_code"))
		}

		conf = b.submit(otpConfirm, "", `{"token": "`+token+`", "otp": "123456"}`)
		b.waitIn(conf.ID, "confirmed", store.StatusSucceeded)
		done := b.submit(completion, "", `{"order_id": "s-2", "amount": "99"}`)
		s = b.waitIn(done.ID, "escalation", store.StatusEscalated)
		if s.Error.Code != "err_amount_hold" {
			t.Errorf("completion above the hold: error %+v", s.Error)
		}
		b.advance(72 * time.Hour)
		b.waitIn(done.ID, "failed", store.StatusFailed)
	})

	t.Run("the seed hold on a success card", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		hold := b.submit(holdOnly, "s-3", holdInput(liqpay.CardSuccess, "s-3"))
		s := b.waitIn(hold.ID, "held", store.StatusSucceeded)
		if s.get("callback.status") != "hold_wait" {
			t.Errorf("callback.status %q", s.get("callback.status"))
		}
		done := b.submit(completion, "", `{"order_id": "s-3"}`)
		s = b.waitIn(done.ID, "completed", store.StatusSucceeded)
		if s.get("captured_amount") != "10.5" {
			t.Errorf("captured_amount %q", s.get("captured_amount"))
		}
	})
}
