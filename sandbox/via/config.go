package via

import (
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"time"
)

// DefaultClientID is the partner id a Server built with no Partners knows:
// the client-id of every example in VIA's documentation (holds.md §2.1).
const DefaultClientID = "system"

// DefaultClientSecret is the client-secret paired with DefaultClientID. It
// is the documentation's published example value, not a secret.
const DefaultClientSecret = "system123"

// DefaultMerchantID is the merchant a Server built with no Merchants knows:
// the merchantId of the documentation's create example (holds.md §2.1).
const DefaultMerchantID = "mrt_qwegFC1lHGaAzJIRphv4LdU10zX"

// DefaultHoldTime is how long a hold lasts when create omits holdTime
// [inferred: VIA documents no default].
const DefaultHoldTime = 24 * time.Hour

// MaxHoldTime is the longest hold the sandbox accepts; a longer holdTime is
// VALIDATION_ERROR [inferred: VIA documents no limit; this one only keeps
// the arithmetic sane].
const MaxHoldTime = 366 * 24 * time.Hour

// DefaultWebhookBackoff is the wait before the first webhook retry when
// Config.WebhookBackoff is zero; it doubles on every further retry.
const DefaultWebhookBackoff = 50 * time.Millisecond

// WebhookRetries is how many times a webhook answered with a non-2xx status
// (or not answered) is retried after the first attempt.
const WebhookRetries = 3

// closeTimeout bounds how long Close waits for webhooks still in flight.
const closeTimeout = 5 * time.Second

// Config configures a Server. The zero value is usable: every field has a
// default, given in its comment.
type Config struct {
	// Partners maps client-id to client-secret for the partners the
	// sandbox admits. Default: {DefaultClientID: DefaultClientSecret}.
	Partners map[string]string

	// Merchants are the merchantIds create accepts, for every partner.
	// Default: [DefaultMerchantID].
	Merchants []string

	// Cards maps card tokens to what holding funds on them does; a token
	// not in the map is CARD_NOT_FOUND. A non-empty map replaces the
	// default rather than adding to it. Default: DefaultCards().
	Cards map[string]Outcome

	// Clock is the sandbox clock. It stamps createdAt, expiresAt and
	// webhook updatedAt, and drives pending resolution and expiry, so a
	// test can move time by hand. Default: time.Now.
	Clock func() time.Time

	// PendingFor is how long, in sandbox-clock time, each pending step
	// lasts: a new hold is NEW for PendingFor, then CREATE_PENDING for
	// PendingFor, then CREATE_SUCCESS (or CREATE_ERROR); a confirm or
	// cancel is *_PENDING for PendingFor before its outcome. Zero makes
	// every operation reach its outcome at once. Default: 0.
	PendingFor time.Duration

	// DefaultHoldTime is the hold's lifetime when create omits holdTime.
	// Default: DefaultHoldTime (24 h).
	DefaultHoldTime time.Duration

	// HoldTimeUnit is the unit of create's holdTime. VIA says minutes but
	// its example sends 3600 (holds.md §2.2); set time.Second to model the
	// other reading. Default: time.Minute.
	HoldTimeUnit time.Duration

	// WebhookURL turns on the sandbox-only webhook extension: every status
	// change of every hold is POSTed there as JSON. VIA documents no
	// callbacks (holds.md §2.4); a faithful client polls /partner/hold/info
	// instead. Default: "" (off).
	WebhookURL string

	// WebhookBackoff is the wait before the first webhook retry; it doubles
	// on each retry. Default: DefaultWebhookBackoff.
	WebhookBackoff time.Duration

	// HTTPClient delivers webhooks. Default: a client with a 5-second
	// timeout.
	HTTPClient *http.Client

	// Logger receives one structured record per request and per webhook
	// attempt. Card tokens and client secrets are never logged. Default: a
	// logger that discards everything.
	Logger *slog.Logger

	// Faults are fault knobs applied to every request, on top of those a
	// request asks for in sandbox_fault or X-Sandbox-Fault. Default: none.
	Faults Faults
}

// withDefaults returns a copy of cfg with every zero field replaced by its
// default and the maps and slices cloned, so the caller may reuse them.
func (cfg Config) withDefaults() Config {
	cfg.Partners = maps.Clone(cfg.Partners)
	if len(cfg.Partners) == 0 {
		cfg.Partners = map[string]string{DefaultClientID: DefaultClientSecret}
	}
	cfg.Merchants = slices.Clone(cfg.Merchants)
	if len(cfg.Merchants) == 0 {
		cfg.Merchants = []string{DefaultMerchantID}
	}
	cfg.Cards = maps.Clone(cfg.Cards)
	if len(cfg.Cards) == 0 {
		cfg.Cards = DefaultCards()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.DefaultHoldTime <= 0 {
		cfg.DefaultHoldTime = DefaultHoldTime
	}
	if cfg.HoldTimeUnit <= 0 {
		cfg.HoldTimeUnit = time.Minute
	}
	cfg.withTransportDefaults()
	return cfg
}

// withTransportDefaults fills in the webhook and logging defaults.
func (cfg *Config) withTransportDefaults() {
	if cfg.WebhookBackoff <= 0 {
		cfg.WebhookBackoff = DefaultWebhookBackoff
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
}
