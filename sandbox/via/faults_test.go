package via_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/sandbox/via"
)

func TestParseFaults(t *testing.T) {
	t.Parallel()
	t.Run("every knob round-trips through String", func(t *testing.T) {
		t.Parallel()
		all := "latency=200ms,http500,timeout,pending=2s,create_error,confirm_error,cancel_error," +
			"drop_webhook,duplicate_webhook,delay_webhook=1s,reorder_webhooks"
		f, err := via.ParseFaults(all)
		if err != nil {
			t.Fatal(err)
		}
		if f.String() != all {
			t.Fatalf("String() = %q, want %q", f.String(), all)
		}
	})
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{" pending , http500 ,", "http500,pending"},
		{"pending", "pending"},
	} {
		t.Run("parses "+c.in, func(t *testing.T) {
			t.Parallel()
			f, err := via.ParseFaults(c.in)
			if err != nil || f.String() != c.want {
				t.Fatalf("ParseFaults(%q) = %q, %v; want %q", c.in, f.String(), err, c.want)
			}
		})
	}
	for _, in := range []string{"bogus", "latency", "latency=0", "latency=-1s", "latency=soon", "http500=1s", "pending=x", "delay_webhook"} {
		t.Run("rejects "+in, func(t *testing.T) {
			t.Parallel()
			if _, err := via.ParseFaults(in); err == nil {
				t.Fatalf("ParseFaults(%q) succeeded", in)
			}
		})
	}
}

// knob adds a sandbox_fault field to a body.
func knob(body map[string]any, knobs string) map[string]any {
	return with(body, "sandbox_fault", knobs)
}

func TestServer_FaultKnobs(t *testing.T) {
	t.Parallel()
	t.Run("latency delays the reply", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		start := time.Now()
		b.create(t, knob(createBody("ext-1", via.CardSuccess), "latency=150ms"))
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("reply after %v, want at least 150ms", d)
		}
	})
	t.Run("latency past the client's timeout still takes effect, and a resend replays it", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		impatient := &http.Client{Timeout: 50 * time.Millisecond}
		resp, err := impatient.Do(b.newRequest(t, via.PathCreate, knob(createBody("ext-1", via.CardSuccess), "latency=2s")))
		if err == nil {
			resp.Body.Close()
			t.Fatal("the client did not time out")
		}
		data := b.ok(t, via.PathCreate, createBody("ext-1", via.CardSuccess))
		expect(t, data, map[string]any{"status": via.StatusCreateSuccess})
		if calls := b.sandbox.Calls(); len(calls) != 2 || !calls[1].Replay || calls[1].HoldID != calls[0].HoldID {
			t.Fatalf("Calls() = %+v, want the resend to replay the first create", calls)
		}
	})
	t.Run("http500 answers 500 INTERNAL_ERROR and does nothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		b.fails(t, via.PathCreate, knob(createBody("ext-1", via.CardSuccess), "http500"), http.StatusInternalServerError, via.CodeInternal)
		b.create(t, createBody("ext-1", via.CardSuccess))
		if calls := b.sandbox.Calls(); calls[1].Replay {
			t.Fatal("a create after http500 replayed something")
		}
	})
	t.Run("timeout never answers and does nothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req := b.newRequest(t, via.PathCreate, knob(createBody("ext-1", via.CardSuccess), "timeout")).WithContext(ctx)
		if resp, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
			if err == nil {
				resp.Body.Close()
			}
			t.Fatalf("err = %v, want the client's deadline", err)
		}
		b.create(t, createBody("ext-1", via.CardSuccess))
		// The hung request is recorded once the server notices the client left.
		calls := eventually(t, func() ([]via.Call, bool) {
			calls := b.sandbox.Calls()
			return calls, len(calls) == 2
		})
		for _, c := range calls {
			if c.Faults == "timeout" && (c.HTTPStatus != 0 || c.HoldID != "") || c.Faults == "" && c.Replay {
				t.Fatalf("Calls() = %+v, want an unanswered call and no hold", calls)
			}
		}
	})
	t.Run("pending stops a create at CREATE_PENDING", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{PendingFor: time.Second})
		id := b.create(t, knob(createBody("ext-1", via.CardSuccess), "pending"))
		b.clock.Advance(time.Second)
		if got := b.status(t, id); got != via.StatusCreatePending {
			t.Fatalf("status %s, want CREATE_PENDING", got)
		}
		b.clock.Advance(30 * 24 * time.Hour)
		if got := b.status(t, id); got != via.StatusCreatePending {
			t.Fatalf("a month later: status %s, want CREATE_PENDING", got)
		}
	})
	t.Run("pending=D makes a create take D per step", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, knob(createBody("ext-1", via.CardSuccess), "pending=3s"))
		var got []string
		for range 3 {
			got = append(got, b.status(t, id))
			b.clock.Advance(3 * time.Second)
		}
		if want := []string{via.StatusNew, via.StatusCreatePending, via.StatusCreateSuccess}; !slices.Equal(got, want) {
			t.Fatalf("statuses %v, want %v", got, want)
		}
	})
	t.Run("pending stops a confirm at CONFIRM_PENDING", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		expect(t, b.ok(t, via.PathConfirm, knob(confirmBody(id, 100), "pending")), map[string]any{"status": via.StatusConfirmPending})
		b.clock.Advance(48 * time.Hour)
		expect(t, b.info(t, id), map[string]any{"status": via.StatusConfirmPending, "confirmedAmount": 0})
	})
	t.Run("pending=D makes a confirm pending for D", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		expect(t, b.ok(t, via.PathConfirm, knob(confirmBody(id, 100), "pending=2s")), map[string]any{"status": via.StatusConfirmPending})
		b.clock.Advance(2 * time.Second)
		expect(t, b.info(t, id), map[string]any{"status": via.StatusConfirmSuccess, "confirmedAmount": 100})
	})
	t.Run("pending in the X-Sandbox-Fault header stops a bodiless cancel at CANCEL_PENDING", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		req := b.newRequest(t, via.PathCancel+"?holdId="+id, nil)
		req.Header.Set(via.FaultHeader, "pending")
		_, reply := b.do(t, http.DefaultClient, req)
		expect(t, dataOf(t, reply), map[string]any{"status": via.StatusCancelPending})
		b.clock.Advance(48 * time.Hour)
		if got := b.status(t, id); got != via.StatusCancelPending {
			t.Fatalf("status %s, want CANCEL_PENDING", got)
		}
	})
	t.Run("create_error declines a good card", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, knob(createBody("ext-1", via.CardSuccess), "create_error"))
		if got := b.status(t, id); got != via.StatusCreateError {
			t.Fatalf("status %s, want CREATE_ERROR", got)
		}
	})
	t.Run("confirm_error captures nothing and leaves the hold capturable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		expect(t, b.ok(t, via.PathConfirm, knob(confirmBody(id, 100), "confirm_error")), map[string]any{"status": via.StatusConfirmError})
		expect(t, b.info(t, id), map[string]any{"status": via.StatusConfirmError, "confirmedAmount": 0})
		expect(t, b.ok(t, via.PathConfirm, confirmBody(id, 100)), map[string]any{"status": via.StatusConfirmSuccess})
		expect(t, b.info(t, id), map[string]any{"confirmedAmount": 100})
	})
	t.Run("confirm_error with PendingFor goes through CONFIRM_PENDING, then a cancel is allowed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{PendingFor: time.Second})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		b.clock.Advance(2 * time.Second)
		expect(t, b.ok(t, via.PathConfirm, knob(confirmBody(id, 100), "confirm_error")), map[string]any{"status": via.StatusConfirmPending})
		b.clock.Advance(time.Second)
		if got := b.status(t, id); got != via.StatusConfirmError {
			t.Fatalf("status %s, want CONFIRM_ERROR", got)
		}
		expect(t, b.ok(t, via.PathCancel, cancelBody(id)), map[string]any{"status": via.StatusCancelPending})
	})
	t.Run("cancel_error releases nothing and leaves the hold capturable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		expect(t, b.ok(t, via.PathCancel, knob(cancelBody(id), "cancel_error")), map[string]any{"status": via.StatusCancelError})
		if got := b.status(t, id); got != via.StatusCancelError {
			t.Fatalf("status %s, want CANCEL_ERROR", got)
		}
		expect(t, b.ok(t, via.PathConfirm, confirmBody(id, 10000)), map[string]any{"status": via.StatusConfirmSuccess})
	})
	t.Run("a hold left in CANCEL_ERROR still expires", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		b.ok(t, via.PathCancel, knob(cancelBody(id), "cancel_error"))
		b.clock.Advance(time.Hour)
		if got := b.status(t, id); got != via.StatusExpired {
			t.Fatalf("status %s, want EXPIRED", got)
		}
	})
	t.Run("knobs in Config apply to every request", func(t *testing.T) {
		t.Parallel()
		f, err := via.ParseFaults("create_error")
		if err != nil {
			t.Fatal(err)
		}
		b := setup(t, via.Config{Faults: f})
		id := b.create(t, knob(createBody("ext-1", via.CardSuccess), "latency=1ms"))
		if got := b.status(t, id); got != via.StatusCreateError {
			t.Fatalf("status %s, want CREATE_ERROR", got)
		}
		if calls := b.sandbox.Calls(); calls[0].Faults != "latency=1ms,create_error" {
			t.Fatalf("Calls()[0].Faults = %q", calls[0].Faults)
		}
	})
	t.Run("an unknown or malformed knob is VALIDATION_ERROR", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		b.fails(t, via.PathCreate, knob(createBody("ext-1", via.CardSuccess), "explode"), http.StatusBadRequest, via.CodeValidation)
		b.fails(t, via.PathCreate, createBody("ext-1", via.CardSuccess, "sandbox_fault", 5), http.StatusBadRequest, via.CodeValidation)
		req := b.newRequest(t, via.PathInfo+"?holdId=phl_x", nil)
		req.Header.Set(via.FaultHeader, "latency=soon")
		status, reply := b.do(t, http.DefaultClient, req)
		checkError(t, via.PathInfo, status, reply, http.StatusBadRequest, via.CodeValidation)
	})
}

func TestServer_webhookKnobs(t *testing.T) {
	t.Parallel()
	t.Run("drop_webhook records but never sends", func(t *testing.T) {
		t.Parallel()
		b := setupHooks(t, via.Config{})
		id := b.create(t, knob(createBody("ext-1", via.CardSuccess), "drop_webhook"))
		b.ok(t, via.PathConfirm, confirmBody(id, 1))
		_ = b.sandbox.Close()
		b.hooks.none(t)
		got := b.sandbox.Webhooks()
		if len(got) != 3 || got[2].Status != via.StatusConfirmSuccess {
			t.Fatalf("Webhooks() = %+v, want three", got)
		}
		for _, d := range got {
			if d.Attempts != 0 || d.Fault != "drop_webhook" || !d.Done {
				t.Fatalf("Webhooks() = %+v, want all dropped", got)
			}
		}
	})
	t.Run("duplicate_webhook sends each webhook twice", func(t *testing.T) {
		t.Parallel()
		b := setupHooks(t, via.Config{PendingFor: time.Second})
		b.create(t, knob(createBody("ext-1", via.CardSuccess), "duplicate_webhook"))
		first, second := b.hooks.next(t), b.hooks.next(t)
		if first.raw != second.raw || first.Status != via.StatusNew {
			t.Fatalf("copies %s and %s differ", first.raw, second.raw)
		}
		_ = b.sandbox.Close()
		b.hooks.none(t)
	})
	t.Run("delay_webhook delays each webhook", func(t *testing.T) {
		t.Parallel()
		b := setupHooks(t, via.Config{PendingFor: time.Second})
		sent := time.Now()
		b.create(t, knob(createBody("ext-1", via.CardSuccess), "delay_webhook=150ms"))
		if d := b.hooks.next(t).at.Sub(sent); d < 150*time.Millisecond {
			t.Fatalf("webhook after %v, want at least 150ms", d)
		}
		if got := b.sandbox.Webhooks(); got[0].Fault != "delay_webhook=150ms" {
			t.Fatalf("Webhooks()[0].Fault = %q", got[0].Fault)
		}
	})
	t.Run("reorder_webhooks sends the later status first", func(t *testing.T) {
		t.Parallel()
		b := setupHooks(t, via.Config{})
		id := b.create(t, knob(createBody("ext-1", via.CardSuccess), "reorder_webhooks"))
		b.ok(t, via.PathConfirm, confirmBody(id, 1))
		got := b.hooks.statuses(t, 3)
		if want := []string{via.StatusCreateSuccess, via.StatusNew, via.StatusConfirmSuccess}; !slices.Equal(got, want) {
			t.Fatalf("webhooks %v, want %v", got, want)
		}
	})
	t.Run("a webhook knob on a later request shapes only that request's webhooks", func(t *testing.T) {
		t.Parallel()
		b := setupHooks(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		b.ok(t, via.PathConfirm, knob(confirmBody(id, 1), "drop_webhook"))
		_ = b.sandbox.Close()
		if got := b.hooks.statuses(t, 2); !slices.Equal(got, []string{via.StatusNew, via.StatusCreateSuccess}) {
			t.Fatalf("webhooks %v", got)
		}
		b.hooks.none(t)
	})
	t.Run("pending=D resolves by itself with a real clock", func(t *testing.T) {
		t.Parallel()
		b := setupHooks(t, via.Config{Clock: time.Now})
		b.create(t, knob(createBody("ext-1", via.CardSuccess), "pending=30ms"))
		got := b.hooks.statuses(t, 3)
		if want := []string{via.StatusNew, via.StatusCreatePending, via.StatusCreateSuccess}; !slices.Equal(got, want) {
			t.Fatalf("webhooks %v, want %v", got, want)
		}
	})
	t.Run("webhooks wait for the reply of the request that caused them", func(t *testing.T) {
		t.Parallel()
		b := setupHooks(t, via.Config{})
		start := time.Now()
		b.create(t, knob(createBody("ext-1", via.CardSuccess), "latency=150ms"))
		if d := b.hooks.next(t).at.Sub(start); d < 150*time.Millisecond {
			t.Fatalf("webhook after %v, before the reply", d)
		}
	})
}

// TestServer_knobsNeedAuthentication shows that an unauthenticated request
// cannot trigger a knob: it is refused before knobs are read.
func TestServer_knobsNeedAuthentication(t *testing.T) {
	t.Parallel()
	b := setup(t, via.Config{})
	req := b.newRequest(t, via.PathInfo+"?holdId=phl_x", nil)
	req.Header.Set("client-secret", "wrong")
	req.Header.Set(via.FaultHeader, "timeout")
	status, reply := b.do(t, http.DefaultClient, req)
	checkError(t, via.PathInfo, status, reply, http.StatusUnauthorized, via.CodeUnauthorized)
	if calls := b.sandbox.Calls(); strings.Contains(calls[0].Faults, "timeout") {
		t.Fatalf("Calls()[0].Faults = %q", calls[0].Faults)
	}
}
