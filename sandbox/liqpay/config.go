package liqpay

import (
	"log/slog"
	"net/http"
	"time"
)

// DefaultPublicKey is the sandbox merchant known to a Server built with no
// Keys. Its "sandbox_" prefix marks it as a test key, as LiqPay's own sandbox
// keys are (holds.md §1.2).
const DefaultPublicKey = "sandbox_i00000000"

// DefaultPrivateKey is the private key paired with DefaultPublicKey. It is a
// published test value, not a secret.
const DefaultPrivateKey = "sandbox_a4825234f4bae72a0be04eafe9e8e2bada209255"

// DefaultOTP is the one-time password the sandbox accepts when Config.OTP is
// empty.
const DefaultOTP = "123456"

// DefaultHoldValidity is how long a hold stays capturable when
// Config.HoldValidity is zero: LiqPay lets a merchant complete or release a
// hold within 30 days (holds.md §1.5).
const DefaultHoldValidity = 30 * 24 * time.Hour

// DefaultCallbackBackoff is the wait before the first callback retry when
// Config.CallbackBackoff is zero; it doubles on every further retry.
const DefaultCallbackBackoff = 50 * time.Millisecond

// CallbackRetries is how many times a callback answered with a non-2xx
// status (or not answered) is retried after the first attempt.
const CallbackRetries = 5

// MaxOTPAttempts is how many wrong OTPs a payment survives: the last one
// fails it with err_code err_sms_otp [inferred].
const MaxOTPAttempts = 3

// closeTimeout bounds how long Close waits for callbacks still in flight.
const closeTimeout = 5 * time.Second

// Config configures a Server. The zero value is usable: every field has a
// default, given in its comment.
type Config struct {
	// Keys maps public_key to private_key for the merchants the sandbox
	// knows. Default: {DefaultPublicKey: DefaultPrivateKey}.
	Keys map[string]string

	// OTP is the only one-time password confirm accepts. Default: DefaultOTP.
	OTP string

	// Clock is the sandbox clock. It stamps create_date/end_date and drives
	// hold expiry and pending resolution, so a test can move time by hand.
	// Default: time.Now.
	Clock func() time.Time

	// HTTPClient delivers callbacks to server_url. Default: a client with a
	// 5-second timeout.
	HTTPClient *http.Client

	// Logger receives one structured record per request and per callback.
	// Card numbers, CVVs, keys, OTPs and confirm tokens are never logged.
	// Default: a logger that discards everything.
	Logger *slog.Logger

	// CallbackDelay is waited (in real time) before the first attempt of
	// every callback. The delay_callback knob overrides it. Default: 0.
	CallbackDelay time.Duration

	// CallbackBackoff is the wait before the first callback retry; it
	// doubles on each retry. Default: DefaultCallbackBackoff.
	CallbackBackoff time.Duration

	// Faults are fault knobs applied to every request and payment, on top
	// of those a request asks for in sandbox_fault. Default: none.
	Faults Faults

	// HoldValidity is how long after create_date a hold_wait payment can
	// still be completed or released; after that it reads as reversed with
	// err_code "expired". Default: DefaultHoldValidity.
	HoldValidity time.Duration
}

// withDefaults returns cfg with every zero field replaced by its default.
func (cfg Config) withDefaults() Config {
	if len(cfg.Keys) == 0 {
		cfg.Keys = map[string]string{DefaultPublicKey: DefaultPrivateKey}
	}
	if cfg.OTP == "" {
		cfg.OTP = DefaultOTP
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CallbackBackoff <= 0 {
		cfg.CallbackBackoff = DefaultCallbackBackoff
	}
	if cfg.HoldValidity <= 0 {
		cfg.HoldValidity = DefaultHoldValidity
	}
	return cfg
}
