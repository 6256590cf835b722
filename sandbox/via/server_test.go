package via_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/sandbox/via"
)

// holdIDPattern is the shape of VIA's example phl_2RW4uL2eTpbCqyUjw9mZEOUgVYY.
var holdIDPattern = regexp.MustCompile(`^phl_[0-9A-Za-z]{27}$`)

func TestStatuses(t *testing.T) {
	t.Parallel()
	want := []string{"NEW", "CREATE_SUCCESS", "CREATE_PENDING", "CREATE_ERROR", "CONFIRM_SUCCESS",
		"CONFIRM_PENDING", "CONFIRM_ERROR", "CANCEL_SUCCESS", "CANCEL_PENDING", "CANCEL_ERROR", "EXPIRED"}
	if got := via.Statuses(); !slices.Equal(got, want) {
		t.Fatalf("Statuses() = %v, want the eleven documented ones %v", got, want)
	}
}

func TestDefaultCards(t *testing.T) {
	t.Parallel()
	token := regexp.MustCompile(`^[0-9A-Z]{32}$`)
	for card := range via.DefaultCards() {
		if !token.MatchString(card) {
			t.Errorf("test card %q is not 32 upper-case alphanumerics like VIA's tokens", card)
		}
	}
}

func TestServer_Create(t *testing.T) {
	t.Parallel()
	t.Run("the reply says NEW and with no pending time the hold is held at once", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		if !holdIDPattern.MatchString(id) {
			t.Fatalf("holdId %q is not phl_ + 27 base62", id)
		}
		created := b.clock.Now()
		expect(t, b.info(t, id), map[string]any{
			"holdId": id, "status": via.StatusCreateSuccess, "amount": 10000, "confirmedAmount": 0,
			"externalId": "ext-1", "createdAt": created.Unix(), "expiresAt": created.Add(time.Hour).Unix(),
		})
	})
	t.Run("with PendingFor the hold goes NEW, CREATE_PENDING, CREATE_SUCCESS", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{PendingFor: 10 * time.Second})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		for _, c := range []struct {
			advance time.Duration
			want    string
		}{
			{0, via.StatusNew},
			{9999 * time.Millisecond, via.StatusNew},
			{time.Millisecond, via.StatusCreatePending},
			{9999 * time.Millisecond, via.StatusCreatePending},
			{time.Millisecond, via.StatusCreateSuccess},
		} {
			b.clock.Advance(c.advance)
			if got := b.status(t, id); got != c.want {
				t.Fatalf("after +%v: status %s, want %s", c.advance, got, c.want)
			}
		}
	})
	for _, c := range []struct {
		name, card string
		want       []string // status at +0, +P, +2P with PendingFor P
	}{
		{"the success card is held", via.CardSuccess,
			[]string{via.StatusNew, via.StatusCreatePending, via.StatusCreateSuccess}},
		{"the insufficient-funds card ends CREATE_ERROR", via.CardInsufficientFunds,
			[]string{via.StatusNew, via.StatusCreatePending, via.StatusCreateError}},
		{"the pending card stays CREATE_PENDING", via.CardPending,
			[]string{via.StatusNew, via.StatusCreatePending, via.StatusCreatePending}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, via.Config{PendingFor: time.Second})
			id := b.create(t, createBody("ext-1", c.card))
			var got []string
			for range 3 {
				got = append(got, b.status(t, id))
				b.clock.Advance(time.Second)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("statuses %v, want %v", got, c.want)
			}
			b0 := setup(t, via.Config{})
			if got := b0.status(t, b0.create(t, createBody("ext-1", c.card))); got != c.want[2] {
				t.Fatalf("with no pending time: status %s, want %s", got, c.want[2])
			}
		})
	}
	t.Run("the pending card never resolves nor expires", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardPending))
		b.clock.Advance(400 * 24 * time.Hour)
		b.sandbox.Sweep()
		if got := b.status(t, id); got != via.StatusCreatePending {
			t.Fatalf("status %s, want CREATE_PENDING", got)
		}
	})
	t.Run("an unknown card token is CARD_NOT_FOUND and creates nothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		b.fails(t, via.PathCreate, createBody("ext-1", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), http.StatusNotFound, via.CodeCardNotFound)
		if call := b.sandbox.Calls()[0]; call.HoldID != "" {
			t.Fatalf("Calls()[0].HoldID = %q, want none", call.HoldID)
		}
		b.create(t, createBody("ext-1", via.CardSuccess)) // the externalId is still free
	})
	t.Run("an unknown merchant is MERCHANT_NOT_FOUND", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		b.fails(t, via.PathCreate, createBody("ext-1", via.CardSuccess, "merchantId", "mrt_unknown"),
			http.StatusNotFound, via.CodeMerchantNotFound)
	})
	t.Run("accounts may be a string, as documented, or an object, as in the example", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		b.create(t, createBody("ext-1", via.CardSuccess, "accounts", "998901234567"))
		b.create(t, createBody("ext-2", via.CardSuccess, "accounts", map[string]any{}))
	})
	t.Run("amount may be an integer string", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess, "amount", "250000"))
		expect(t, b.info(t, id), map[string]any{"amount": 250000})
	})
	t.Run("holdTime is in minutes and defaults to a day", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		now := b.clock.Now()
		expect(t, b.info(t, b.create(t, createBody("ext-1", via.CardSuccess, "holdTime", 3600))),
			map[string]any{"expiresAt": now.Add(60 * time.Hour).Unix()})
		expect(t, b.info(t, b.create(t, createBody("ext-2", via.CardSuccess, "holdTime", nil))),
			map[string]any{"expiresAt": now.Add(24 * time.Hour).Unix()})
	})
	t.Run("HoldTimeUnit and DefaultHoldTime change the reading of holdTime", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{HoldTimeUnit: time.Second, DefaultHoldTime: 7 * time.Minute})
		now := b.clock.Now()
		expect(t, b.info(t, b.create(t, createBody("ext-1", via.CardSuccess, "holdTime", 3600))),
			map[string]any{"expiresAt": now.Add(time.Hour).Unix()})
		expect(t, b.info(t, b.create(t, createBody("ext-2", via.CardSuccess, "holdTime", nil))),
			map[string]any{"expiresAt": now.Add(7 * time.Minute).Unix()})
	})
	t.Run("Config.Cards and Config.Merchants replace the defaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{
			Cards:     map[string]via.Outcome{"MYCARD": via.OutcomeInsufficientFunds},
			Merchants: []string{"mrt_mine"},
		})
		id := b.create(t, createBody("ext-1", "MYCARD", "merchantId", "mrt_mine"))
		if got := b.status(t, id); got != via.StatusCreateError {
			t.Fatalf("status %s, want CREATE_ERROR", got)
		}
		b.fails(t, via.PathCreate, createBody("ext-2", via.CardSuccess, "merchantId", "mrt_mine"), http.StatusNotFound, via.CodeCardNotFound)
		b.fails(t, via.PathCreate, createBody("ext-3", "MYCARD"), http.StatusNotFound, via.CodeMerchantNotFound)
	})
}

func TestServer_Create_validation(t *testing.T) {
	t.Parallel()
	b := setup(t, via.Config{})
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	for _, c := range []struct {
		name string
		kv   []any
	}{
		{"merchantId missing", []any{"merchantId", nil}},
		{"merchantId not a string", []any{"merchantId", 5}},
		{"cardToken missing", []any{"cardToken", nil}},
		{"externalId missing", []any{"externalId", nil}},
		{"externalId blank", []any{"externalId", "  "}},
		{"externalId too long", []any{"externalId", strings.Repeat("x", 256)}},
		{"amount missing", []any{"amount", nil}},
		{"amount null", []any{"amount", raw("null")}},
		{"amount zero", []any{"amount", 0}},
		{"amount negative", []any{"amount", -100}},
		{"amount fractional", []any{"amount", raw("100.5")}},
		{"amount with exponent", []any{"amount", raw("1e3")}},
		{"amount as a fractional string", []any{"amount", "100.5"}},
		{"amount as an exponent string", []any{"amount", "1e3"}},
		{"amount with spaces", []any{"amount", " 100"}},
		{"amount with a plus sign", []any{"amount", "+100"}},
		{"amount with a leading zero", []any{"amount", "0100"}},
		{"amount boolean", []any{"amount", true}},
		{"amount beyond int64", []any{"amount", raw("9223372036854775808")}},
		{"currency missing", []any{"currency", nil}},
		{"currency not UZS", []any{"currency", "USD"}},
		{"currency lower case", []any{"currency", "uzs"}},
		{"accounts missing", []any{"accounts", nil}},
		{"accounts an array", []any{"accounts", []any{"x"}}},
		{"accounts a number", []any{"accounts", 5}},
		{"accounts blank", []any{"accounts", ""}},
		{"note not a string", []any{"note", 5}},
		{"holdTime zero", []any{"holdTime", 0}},
		{"holdTime negative", []any{"holdTime", -5}},
		{"holdTime fractional", []any{"holdTime", raw("1.5")}},
		{"holdTime beyond MaxHoldTime", []any{"holdTime", int64(via.MaxHoldTime/time.Minute) + 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b.fails(t, via.PathCreate, createBody("ext-"+c.name, via.CardSuccess, c.kv...), http.StatusBadRequest, via.CodeValidation)
		})
	}
}

func TestServer_Confirm(t *testing.T) {
	t.Parallel()
	held := func(t *testing.T, cfg via.Config) (*bundle, string) {
		t.Helper()
		b := setup(t, cfg)
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		b.clock.Advance(2 * cfg.PendingFor)
		if got := b.status(t, id); got != via.StatusCreateSuccess {
			t.Fatalf("status %s, want CREATE_SUCCESS", got)
		}
		return b, id
	}
	t.Run("the full amount is captured", func(t *testing.T) {
		t.Parallel()
		b, id := held(t, via.Config{})
		expect(t, b.ok(t, via.PathConfirm, confirmBody(id, 10000)), map[string]any{"holdId": id, "status": via.StatusConfirmSuccess})
		expect(t, b.info(t, id), map[string]any{"status": via.StatusConfirmSuccess, "amount": 10000, "confirmedAmount": 10000})
	})
	t.Run("a smaller amount is captured and the rest released", func(t *testing.T) {
		t.Parallel()
		b, id := held(t, via.Config{})
		b.ok(t, via.PathConfirm, confirmBody(id, 4000))
		expect(t, b.info(t, id), map[string]any{"status": via.StatusConfirmSuccess, "amount": 10000, "confirmedAmount": 4000})
	})
	t.Run("amount may be a string, as documented", func(t *testing.T) {
		t.Parallel()
		b, id := held(t, via.Config{})
		b.ok(t, via.PathConfirm, confirmBody(id, "10000"))
		expect(t, b.info(t, id), map[string]any{"confirmedAmount": 10000})
	})
	t.Run("more than is held is AMOUNT_EXCEEDS_HOLD and changes nothing", func(t *testing.T) {
		t.Parallel()
		b, id := held(t, via.Config{})
		b.fails(t, via.PathConfirm, confirmBody(id, 10001), http.StatusUnprocessableEntity, via.CodeAmountExceedsHold)
		expect(t, b.info(t, id), map[string]any{"status": via.StatusCreateSuccess, "confirmedAmount": 0})
	})
	t.Run("the same confirm twice answers the stored result", func(t *testing.T) {
		t.Parallel()
		b, id := held(t, via.Config{})
		b.ok(t, via.PathConfirm, confirmBody(id, 4000))
		expect(t, b.ok(t, via.PathConfirm, confirmBody(id, "4000")), map[string]any{"holdId": id, "status": via.StatusConfirmSuccess})
		calls := b.sandbox.Calls()
		if last := calls[len(calls)-1]; !last.Replay || last.Status != via.StatusConfirmSuccess {
			t.Fatalf("last call %+v, want a replay", last)
		}
	})
	t.Run("a second confirm with another amount is INVALID_STATE", func(t *testing.T) {
		t.Parallel()
		b, id := held(t, via.Config{})
		b.ok(t, via.PathConfirm, confirmBody(id, 4000))
		b.fails(t, via.PathConfirm, confirmBody(id, 6000), http.StatusConflict, via.CodeInvalidState)
		expect(t, b.info(t, id), map[string]any{"confirmedAmount": 4000})
	})
	t.Run("with PendingFor it is CONFIRM_PENDING first", func(t *testing.T) {
		t.Parallel()
		b, id := held(t, via.Config{PendingFor: 5 * time.Second})
		expect(t, b.ok(t, via.PathConfirm, confirmBody(id, 10000)), map[string]any{"status": via.StatusConfirmPending})
		expect(t, b.ok(t, via.PathConfirm, confirmBody(id, 10000)), map[string]any{"status": via.StatusConfirmPending})
		b.fails(t, via.PathConfirm, confirmBody(id, 9000), http.StatusConflict, via.CodeInvalidState)
		b.fails(t, via.PathCancel, cancelBody(id), http.StatusConflict, via.CodeInvalidState)
		expect(t, b.info(t, id), map[string]any{"status": via.StatusConfirmPending, "confirmedAmount": 0})
		b.clock.Advance(5 * time.Second)
		expect(t, b.info(t, id), map[string]any{"status": via.StatusConfirmSuccess, "confirmedAmount": 10000})
	})
	t.Run("a hold not yet held is INVALID_STATE", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{PendingFor: time.Second})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		b.fails(t, via.PathConfirm, confirmBody(id, 100), http.StatusConflict, via.CodeInvalidState)
		b.clock.Advance(time.Second)
		b.fails(t, via.PathConfirm, confirmBody(id, 100), http.StatusConflict, via.CodeInvalidState)
	})
	t.Run("a declined hold is INVALID_STATE", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardInsufficientFunds))
		b.fails(t, via.PathConfirm, confirmBody(id, 100), http.StatusConflict, via.CodeInvalidState)
	})
	t.Run("a cancelled hold is INVALID_STATE", func(t *testing.T) {
		t.Parallel()
		b, id := held(t, via.Config{})
		b.ok(t, via.PathCancel, cancelBody(id))
		b.fails(t, via.PathConfirm, confirmBody(id, 10000), http.StatusConflict, via.CodeInvalidState)
		expect(t, b.info(t, id), map[string]any{"status": via.StatusCancelSuccess, "confirmedAmount": 0})
	})
	t.Run("an unknown hold is HOLD_NOT_FOUND", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		b.fails(t, via.PathConfirm, confirmBody("phl_2RW4uL2eTpbCqyUjw9mZEOUgVYY", 100), http.StatusNotFound, via.CodeHoldNotFound)
	})
	t.Run("another partner's hold is HOLD_NOT_FOUND", func(t *testing.T) {
		t.Parallel()
		b, id := held(t, via.Config{Partners: map[string]string{via.DefaultClientID: via.DefaultClientSecret, "other": "other-secret"}})
		req := b.newRequest(t, via.PathConfirm, confirmBody(id, 100))
		req.Header.Set("client-id", "other")
		req.Header.Set("client-secret", "other-secret")
		status, reply := b.do(t, http.DefaultClient, req)
		checkError(t, via.PathConfirm, status, reply, http.StatusNotFound, via.CodeHoldNotFound)
	})
	t.Run("amount is required and must be a positive integer", func(t *testing.T) {
		t.Parallel()
		b, id := held(t, via.Config{})
		for _, amount := range []any{nil, 0, "-1", json.RawMessage("99.5"), "1e3"} {
			b.fails(t, via.PathConfirm, confirmBody(id, amount), http.StatusBadRequest, via.CodeValidation)
		}
	})
}

func TestServer_Cancel(t *testing.T) {
	t.Parallel()
	t.Run("a held hold is released", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		expect(t, b.ok(t, via.PathCancel, cancelBody(id)), map[string]any{"holdId": id, "status": via.StatusCancelSuccess})
		expect(t, b.info(t, id), map[string]any{"status": via.StatusCancelSuccess, "confirmedAmount": 0})
	})
	t.Run("holdId may be a query string on a POST with no body, as documented", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		expect(t, b.ok(t, via.PathCancel+"?holdId="+id, nil), map[string]any{"status": via.StatusCancelSuccess})
	})
	t.Run("the same cancel twice answers the stored result", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		b.ok(t, via.PathCancel, cancelBody(id))
		expect(t, b.ok(t, via.PathCancel, cancelBody(id)), map[string]any{"status": via.StatusCancelSuccess})
		if calls := b.sandbox.Calls(); !calls[len(calls)-1].Replay {
			t.Fatal("the second cancel is not marked as a replay")
		}
	})
	t.Run("with PendingFor it is CANCEL_PENDING first", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{PendingFor: time.Second})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		b.clock.Advance(2 * time.Second)
		expect(t, b.ok(t, via.PathCancel, cancelBody(id)), map[string]any{"status": via.StatusCancelPending})
		expect(t, b.ok(t, via.PathCancel, cancelBody(id)), map[string]any{"status": via.StatusCancelPending})
		b.clock.Advance(time.Second)
		if got := b.status(t, id); got != via.StatusCancelSuccess {
			t.Fatalf("status %s, want CANCEL_SUCCESS", got)
		}
	})
	t.Run("a confirmed hold cannot be cancelled", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		b.ok(t, via.PathConfirm, confirmBody(id, 10000))
		b.fails(t, via.PathCancel, cancelBody(id), http.StatusConflict, via.CodeInvalidState)
	})
	t.Run("a declined or pending hold cannot be cancelled", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		for _, card := range []string{via.CardInsufficientFunds, via.CardPending} {
			id := b.create(t, createBody("ext-"+card, card))
			b.fails(t, via.PathCancel, cancelBody(id), http.StatusConflict, via.CodeInvalidState)
		}
	})
}

func TestServer_Expiry(t *testing.T) {
	t.Parallel()
	t.Run("a held hold expires at createdAt + holdTime", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess, "holdTime", 60))
		b.clock.Advance(time.Hour - time.Second)
		if got := b.status(t, id); got != via.StatusCreateSuccess {
			t.Fatalf("a second before expiry: status %s", got)
		}
		b.clock.Advance(time.Second)
		if got := b.status(t, id); got != via.StatusExpired {
			t.Fatalf("at expiry: status %s, want EXPIRED", got)
		}
		b.fails(t, via.PathConfirm, confirmBody(id, 100), http.StatusConflict, via.CodeInvalidState)
		b.fails(t, via.PathCancel, cancelBody(id), http.StatusConflict, via.CodeInvalidState)
	})
	t.Run("a confirm racing expiry sees EXPIRED, not success", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess, "holdTime", 1))
		b.clock.Advance(time.Minute)
		b.fails(t, via.PathConfirm, confirmBody(id, 100), http.StatusConflict, via.CodeInvalidState)
		if got := b.status(t, id); got != via.StatusExpired {
			t.Fatalf("status %s, want EXPIRED", got)
		}
	})
	t.Run("confirmed and cancelled holds do not expire", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		confirmed := b.create(t, createBody("ext-1", via.CardSuccess, "holdTime", 1))
		cancelled := b.create(t, createBody("ext-2", via.CardSuccess, "holdTime", 1))
		b.ok(t, via.PathConfirm, confirmBody(confirmed, 1))
		b.ok(t, via.PathCancel, cancelBody(cancelled))
		b.clock.Advance(time.Hour)
		b.sandbox.Sweep()
		if a, c := b.status(t, confirmed), b.status(t, cancelled); a != via.StatusConfirmSuccess || c != via.StatusCancelSuccess {
			t.Fatalf("statuses %s, %s", a, c)
		}
	})
	t.Run("a pending confirm finishes even if the hold time runs out", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{PendingFor: 10 * time.Second})
		id := b.create(t, createBody("ext-1", via.CardSuccess, "holdTime", 1))
		b.clock.Advance(time.Minute - time.Second)
		b.ok(t, via.PathConfirm, confirmBody(id, 100))
		b.clock.Advance(time.Minute)
		if got := b.status(t, id); got != via.StatusConfirmSuccess {
			t.Fatalf("status %s, want CONFIRM_SUCCESS", got)
		}
	})
	t.Run("a hold held only after its hold time expires at once", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{PendingFor: time.Minute})
		id := b.create(t, createBody("ext-1", via.CardSuccess, "holdTime", 1))
		b.clock.Advance(2 * time.Minute)
		if got := b.status(t, id); got != via.StatusExpired {
			t.Fatalf("status %s, want EXPIRED", got)
		}
	})
}

func TestServer_Idempotency(t *testing.T) {
	t.Parallel()
	t.Run("the same externalId and body answers the original hold's current status", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		body := createBody("ext-1", via.CardSuccess)
		id := b.create(t, body)
		expect(t, b.ok(t, via.PathCreate, body), map[string]any{"holdId": id, "status": via.StatusCreateSuccess})
		b.ok(t, via.PathConfirm, confirmBody(id, 10000))
		expect(t, b.ok(t, via.PathCreate, body), map[string]any{"holdId": id, "status": via.StatusConfirmSuccess})
		calls := b.sandbox.Calls()
		if !calls[1].Replay || calls[0].Replay || calls[1].HoldID != id {
			t.Fatalf("Calls() = %+v, want the second create marked as a replay", calls)
		}
	})
	t.Run("equal bodies match however they are spelled", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess, "holdTime", nil))
		same := `{"accounts":{"myKey":"myValue","account":"123123"},"holdTime":1440,"amount":"10000","currency":"UZS",` +
			`"externalId":"ext-1","cardToken":"` + via.CardSuccess + `","merchantId":"` + via.DefaultMerchantID + `","sandbox_fault":"latency=1ms"}`
		expect(t, b.ok(t, via.PathCreate, same), map[string]any{"holdId": id})
	})
	for _, c := range []struct {
		name string
		kv   []any
	}{
		{"another amount", []any{"amount", 10001}},
		{"another card", []any{"cardToken", via.CardInsufficientFunds}},
		{"another note", []any{"note", "x"}},
		{"other accounts", []any{"accounts", map[string]any{"account": "1"}}},
		{"another holdTime", []any{"holdTime", 61}},
	} {
		t.Run("the same externalId with "+c.name+" is EXTERNAL_ID_CONFLICT", func(t *testing.T) {
			t.Parallel()
			b := setup(t, via.Config{})
			b.create(t, createBody("ext-1", via.CardSuccess))
			b.fails(t, via.PathCreate, createBody("ext-1", via.CardSuccess, c.kv...), http.StatusConflict, via.CodeExternalIDConflict)
		})
	}
	t.Run("externalId is per merchant", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{Merchants: []string{via.DefaultMerchantID, "mrt_other"}})
		a := b.create(t, createBody("ext-1", via.CardSuccess))
		o := b.create(t, createBody("ext-1", via.CardSuccess, "merchantId", "mrt_other"))
		if a == o {
			t.Fatal("two merchants share a hold")
		}
	})
	t.Run("externalId is per partner", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{Partners: map[string]string{via.DefaultClientID: via.DefaultClientSecret, "other": "other-secret"}})
		a := b.create(t, createBody("ext-1", via.CardSuccess))
		req := b.newRequest(t, via.PathCreate, createBody("ext-1", via.CardSuccess))
		req.Header.Set("client-id", "other")
		req.Header.Set("client-secret", "other-secret")
		_, reply := b.do(t, http.DefaultClient, req)
		if o := asText(field(reply, "data", "holdId")); o == a || o == "" {
			t.Fatalf("the other partner got %v", reply)
		}
	})
}

func TestServer_Auth(t *testing.T) {
	t.Parallel()
	b := setup(t, via.Config{Partners: map[string]string{"acme": "s3cret", "beta": "other"}})
	for _, c := range []struct {
		name, id, secret string
	}{
		{"no headers", "", ""},
		{"no secret", "acme", ""},
		{"no id", "", "s3cret"},
		{"a wrong secret", "acme", "s3cret!"},
		{"an unknown partner", "nobody", "s3cret"},
		{"another partner's secret", "acme", "other"},
		{"the documentation's credentials when Partners replaces them", via.DefaultClientID, via.DefaultClientSecret},
	} {
		t.Run(c.name+" is UNAUTHORIZED", func(t *testing.T) {
			t.Parallel()
			for _, path := range []string{via.PathCreate, via.PathConfirm, via.PathCancel, via.PathInfo} {
				req := b.newRequest(t, path, createBody("ext-1", via.CardSuccess, "sandbox_fault", "timeout"))
				req.Header.Del("client-id")
				req.Header.Del("client-secret")
				if c.id != "" {
					req.Header.Set("client-id", c.id)
				}
				if c.secret != "" {
					req.Header.Set("client-secret", c.secret)
				}
				status, reply := b.do(t, http.DefaultClient, req)
				checkError(t, path, status, reply, http.StatusUnauthorized, via.CodeUnauthorized)
			}
		})
	}
	t.Run("the right credentials are admitted", func(t *testing.T) {
		t.Parallel()
		req := b.newRequest(t, via.PathCreate, createBody("ext-ok", via.CardSuccess))
		req.Header.Set("client-id", "acme")
		req.Header.Set("client-secret", "s3cret")
		if status, reply := b.do(t, http.DefaultClient, req); status != http.StatusOK {
			t.Fatalf("HTTP %d %v", status, reply)
		}
	})
}

func TestServer_invalidJSON(t *testing.T) {
	t.Parallel()
	b := setup(t, via.Config{})
	// The documentation's create sample, verbatim: no comma after externalId.
	docsSample := `{
"merchantId": "mrt_qwegFC1lHGaAzJIRphv4LdU10zX",
"externalId": "test_1"
"cardToken": "VLH8VNWKE3SBBBZEKA86T5PF72ZNTEST",
"amount": 10000,
"currency": "UZS",
"note": "",
"accounts": {
"account": "123123",
"myKey": "myValue"
},
"holdTime": 3600
}`
	for _, c := range []struct {
		name, path, body string
	}{
		{"the docs' create sample with its missing comma", via.PathCreate, docsSample},
		{"a trailing comma", via.PathConfirm, `{"holdId":"phl_x","amount":1,}`},
		{"a truncated object", via.PathCreate, `{"merchantId":"mrt_qwegFC1lHGaAzJIRphv4LdU10zX"`},
		{"an array", via.PathCreate, `[{"amount":1}]`},
		{"null", via.PathInfo, `null`},
		{"a string", via.PathCancel, `"phl_x"`},
		{"two objects", via.PathInfo, `{"holdId":"a"} {"holdId":"b"}`},
		{"single quotes", via.PathInfo, `{'holdId':'a'}`},
		{"a form body", via.PathCreate, `merchantId=mrt_qwegFC1lHGaAzJIRphv4LdU10zX&amount=10000`},
		{"an empty create", via.PathCreate, ``},
		{"an empty confirm", via.PathConfirm, ``},
	} {
		t.Run(c.name+" is VALIDATION_ERROR", func(t *testing.T) {
			t.Parallel()
			reply := b.fails(t, c.path, c.body, http.StatusBadRequest, via.CodeValidation)
			if msg := asText(field(reply, "status", "message")); strings.Contains(msg, "Go value") || strings.Contains(msg, "via.") {
				t.Fatalf("status.message %q leaks implementation details", msg)
			}
		})
	}
	t.Run("nothing was created", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		b.fails(t, via.PathCreate, docsSample, http.StatusBadRequest, via.CodeValidation)
		fixed := strings.Replace(docsSample, `"test_1"`, `"test_1",`, 1)
		// The externalId is still free, and the sample with its comma is accepted.
		expect(t, b.ok(t, via.PathCreate, fixed), map[string]any{"status": via.StatusNew})
	})
}

func TestServer_holdIDLocation(t *testing.T) {
	t.Parallel()
	b := setup(t, via.Config{})
	id := b.create(t, createBody("ext-1", via.CardSuccess))
	t.Run("info takes holdId in the query string with no body", func(t *testing.T) {
		t.Parallel()
		expect(t, b.ok(t, via.PathInfo+"?holdId="+id, nil), map[string]any{"holdId": id})
	})
	t.Run("info takes holdId in a JSON body", func(t *testing.T) {
		t.Parallel()
		expect(t, b.ok(t, via.PathInfo, map[string]any{"holdId": id}), map[string]any{"holdId": id})
	})
	t.Run("query string and body may both say the same", func(t *testing.T) {
		t.Parallel()
		expect(t, b.ok(t, via.PathInfo+"?holdId="+id, map[string]any{"holdId": id}), map[string]any{"holdId": id})
	})
	t.Run("query string and body disagreeing is VALIDATION_ERROR", func(t *testing.T) {
		t.Parallel()
		b.fails(t, via.PathInfo+"?holdId="+id, map[string]any{"holdId": "phl_other"}, http.StatusBadRequest, via.CodeValidation)
	})
	t.Run("no holdId at all is VALIDATION_ERROR", func(t *testing.T) {
		t.Parallel()
		b.fails(t, via.PathInfo, nil, http.StatusBadRequest, via.CodeValidation)
		b.fails(t, via.PathCancel, map[string]any{"holdId": 5}, http.StatusBadRequest, via.CodeValidation)
	})
	t.Run("confirm takes holdId in the query string and amount in the body", func(t *testing.T) {
		t.Parallel()
		other := b.create(t, createBody("ext-2", via.CardSuccess))
		expect(t, b.ok(t, via.PathConfirm+"?holdId="+other, map[string]any{"amount": 100}), map[string]any{"status": via.StatusConfirmSuccess})
	})
	t.Run("an unknown holdId is HOLD_NOT_FOUND", func(t *testing.T) {
		t.Parallel()
		b.fails(t, via.PathInfo+"?holdId=phl_2RW4uL2eTpbCqyUjw9mZEOUgVYY", nil, http.StatusNotFound, via.CodeHoldNotFound)
	})
}

func TestServer_routing(t *testing.T) {
	t.Parallel()
	b := setup(t, via.Config{})
	t.Run("an unknown path is NOT_FOUND", func(t *testing.T) {
		t.Parallel()
		b.fails(t, "/partner/hold/refund", map[string]any{}, http.StatusNotFound, via.CodeNotFound)
	})
	t.Run("GET is METHOD_NOT_ALLOWED", func(t *testing.T) {
		t.Parallel()
		req := b.newRequest(t, via.PathInfo, nil)
		req.Method = http.MethodGet
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		checkError(t, via.PathInfo, resp.StatusCode, decodeJSON(t, raw), http.StatusMethodNotAllowed, via.CodeMethodNotAllowed)
		if allow := resp.Header.Get("Allow"); allow != http.MethodPost {
			t.Fatalf("Allow = %q, want POST", allow)
		}
	})
	t.Run("the Server also works unmounted", func(t *testing.T) {
		t.Parallel()
		sandbox := via.New(via.Config{})
		t.Cleanup(func() { _ = sandbox.Close() })
		srv := httptest.NewServer(sandbox)
		t.Cleanup(srv.Close)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+via.PathInfo+"?holdId=phl_x", nil)
		req.Header.Set("client-id", via.DefaultClientID)
		req.Header.Set("client-secret", via.DefaultClientSecret)
		status, reply := b.do(t, http.DefaultClient, req)
		if status != http.StatusNotFound || asText(field(reply, "error", "path")) != via.PathInfo {
			t.Fatalf("HTTP %d %v", status, reply)
		}
	})
}

func TestServer_errorEnvelope(t *testing.T) {
	t.Parallel()
	b := setup(t, via.Config{})
	resp, err := http.DefaultClient.Do(b.newRequest(t, via.PathInfo+"?holdId=phl_nope", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	want := `{"status":{"code":"HOLD_NOT_FOUND","message":"no hold phl_nope"},` +
		`"error":{"path":"/sandbox/via/partner/hold/info",` +
		`"message":{"uz":"Xold topilmadi","ru":"Холдирование не найдено","en":"Hold not found"}}}`
	if string(raw) != want {
		t.Fatalf("reply\n%s\nwant\n%s", raw, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("Content-Type = %q", ct)
	}
}

func TestServer_Calls(t *testing.T) {
	t.Parallel()
	b := setup(t, via.Config{})
	id := b.create(t, createBody("ext-1", via.CardSuccess))
	b.ok(t, via.PathConfirm, confirmBody(id, 700))
	b.fails(t, via.PathCancel+"?holdId="+id, nil, http.StatusConflict, via.CodeInvalidState)
	calls := b.sandbox.Calls()
	now := b.clock.Now()
	want := []via.Call{
		{Time: now, Path: via.PathCreate, ClientID: via.DefaultClientID, HoldID: id, ExternalID: "ext-1",
			MerchantID: via.DefaultMerchantID, Amount: 10000, HTTPStatus: 200, Status: via.StatusNew},
		{Time: now, Path: via.PathConfirm, ClientID: via.DefaultClientID, HoldID: id, ExternalID: "ext-1",
			MerchantID: via.DefaultMerchantID, Amount: 700, HTTPStatus: 200, Status: via.StatusConfirmSuccess},
		{Time: now, Path: via.PathCancel, ClientID: via.DefaultClientID, HoldID: id, ExternalID: "ext-1",
			MerchantID: via.DefaultMerchantID, HTTPStatus: 409, ErrCode: via.CodeInvalidState},
	}
	if !slices.Equal(calls, want) {
		t.Fatalf("Calls() =\n%+v\nwant\n%+v", calls, want)
	}
}

func TestServer_neverRevealsSecrets(t *testing.T) {
	t.Parallel()
	b := setupHooks(t, via.Config{})
	for i, card := range []string{via.CardSuccess, via.CardInsufficientFunds, via.CardPending, "UNKNOWNCARDTOKEN0000000000000000"} {
		body := createBody("ext-"+strconv.Itoa(i), card)
		_, reply := b.post(t, via.PathCreate, body)
		b.post(t, via.PathCreate, body)
		id := asText(field(reply, "data", "holdId"))
		b.post(t, via.PathConfirm, confirmBody(id, 5))
		b.post(t, via.PathCancel, cancelBody(id))
		b.post(t, via.PathInfo, cancelBody(id))
	}
	_ = b.sandbox.Close()
	seen := map[string]string{"replies": b.replies.String(), "webhooks": b.hooks.bodies.String(), "logs": b.logs.String()}
	if seen["webhooks"] == "" || seen["logs"] == "" {
		t.Fatal("nothing was recorded; the check would be vacuous")
	}
	secrets := []string{via.CardSuccess, via.CardInsufficientFunds, via.CardPending, "UNKNOWNCARDTOKEN", via.DefaultClientSecret, `"cardToken":`}
	for where, text := range seen {
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain %q", where, secret)
			}
		}
	}
}
