package via_test

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/sandbox/via"
)

func TestServer_Webhooks(t *testing.T) {
	t.Parallel()
	t.Run("off by default", func(t *testing.T) {
		t.Parallel()
		b := setup(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		b.ok(t, via.PathConfirm, confirmBody(id, 1))
		if got := b.sandbox.Webhooks(); len(got) != 0 {
			t.Fatalf("Webhooks() = %+v, want none", got)
		}
	})
	t.Run("every status change is POSTed as labelled JSON", func(t *testing.T) {
		t.Parallel()
		b := setupHooks(t, via.Config{})
		id := b.create(t, createBody("ext-1", via.CardSuccess))
		b.clock.Advance(time.Minute)
		b.ok(t, via.PathConfirm, confirmBody(id, 4000))
		created := b.clock.Now().Add(-time.Minute).Unix()
		for _, want := range []struct {
			status string
			at     int64
		}{
			{via.StatusNew, created},
			{via.StatusCreateSuccess, created},
			{via.StatusConfirmSuccess, created + 60},
		} {
			h := b.hooks.next(t)
			body := `{"holdId":"` + id + `","status":"` + want.status + `","externalId":"ext-1","amount":10000,"updatedAt":` +
				strconv.FormatInt(want.at, 10) + `}`
			if h.raw != body {
				t.Fatalf("webhook %s, want %s", h.raw, body)
			}
			if h.header.Get("Content-Type") != "application/json" || h.header.Get(via.ExtensionHeader) != "webhook" {
				t.Fatalf("webhook headers %v", h.header)
			}
		}
		_ = b.sandbox.Close()
		b.hooks.none(t)
		for _, d := range b.sandbox.Webhooks() {
			if !d.Delivered || d.Attempts != 1 || d.HTTPStatus != http.StatusOK || !d.Done || d.HoldID != id || d.URL != b.hooks.url {
				t.Fatalf("Webhooks() = %+v", b.sandbox.Webhooks())
			}
		}
	})
	t.Run("Sweep posts due changes nobody asked about", func(t *testing.T) {
		t.Parallel()
		b := setupHooks(t, via.Config{PendingFor: time.Second})
		b.create(t, createBody("ext-1", via.CardSuccess, "holdTime", 1))
		b.hooks.next(t)
		b.clock.Advance(time.Minute)
		b.sandbox.Sweep()
		got := b.hooks.statuses(t, 3)
		if want := []string{via.StatusCreatePending, via.StatusCreateSuccess, via.StatusExpired}; !slices.Equal(got, want) {
			t.Fatalf("webhooks %v, want %v", got, want)
		}
	})
	t.Run("non-2xx answers are retried", func(t *testing.T) {
		t.Parallel()
		b := setupHooks(t, via.Config{PendingFor: time.Second})
		b.hooks.failN.Store(2)
		b.create(t, createBody("ext-1", via.CardSuccess))
		b.hooks.next(t)
		_ = b.sandbox.Close()
		got := b.sandbox.Webhooks()
		if len(got) != 1 || got[0].Attempts != 3 || !got[0].Delivered || got[0].HTTPStatus != 200 {
			t.Fatalf("Webhooks() = %+v, want one delivered on attempt 3", got)
		}
	})
	t.Run("retries give up after WebhookRetries", func(t *testing.T) {
		t.Parallel()
		b := setupHooks(t, via.Config{PendingFor: time.Second})
		b.hooks.failN.Store(100)
		b.create(t, createBody("ext-1", via.CardSuccess))
		_ = b.sandbox.Close()
		got := b.sandbox.Webhooks()
		if len(got) != 1 || got[0].Attempts != 1+via.WebhookRetries || got[0].Delivered || got[0].HTTPStatus != 500 {
			t.Fatalf("Webhooks() = %+v, want one undelivered after %d attempts", got, 1+via.WebhookRetries)
		}
	})
}
