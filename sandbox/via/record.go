package via

import "time"

// Call records one request the sandbox answered (or, with the timeout knob,
// refused to answer).
type Call struct {
	// Time is the sandbox-clock time the request arrived.
	Time time.Time
	// Path is the endpoint as routed (PathCreate, PathConfirm, PathCancel,
	// PathInfo), or the raw path when no endpoint matched.
	Path string
	// ClientID is the client-id header; recorded even when it is unknown.
	ClientID string
	// HoldID, ExternalID and MerchantID identify the hold: from the request
	// where it names them, from the hold otherwise; empty when unknown.
	HoldID     string
	ExternalID string
	MerchantID string
	// Amount is the request's amount in tiyin (create, confirm); 0 for
	// cancel and info, and when absent or invalid.
	Amount int64
	// HTTPStatus is the HTTP status sent; 0 when nothing was sent.
	HTTPStatus int
	// Status is the hold status in the reply's data; empty for errors.
	Status string
	// ErrCode is the error envelope's status.code; empty on success.
	ErrCode string
	// Replay reports an idempotent repeat answered from the stored hold: a
	// create with a known externalId and the same body, a confirm or cancel
	// repeating the one already done.
	Replay bool
	// Faults are the knobs in force for the request, in ParseFaults syntax.
	Faults string
}

// Delivery records one webhook of the sandbox-only extension: the sandbox's
// attempts to POST one status change of one hold to Config.WebhookURL.
type Delivery struct {
	// Time is the sandbox-clock time of the status change (the body's
	// updatedAt).
	Time time.Time
	// URL is Config.WebhookURL.
	URL string
	// HoldID and ExternalID identify the hold.
	HoldID     string
	ExternalID string
	// Status is the hold status the webhook announces.
	Status string
	// Attempts is how many POSTs were made so far; 0 for a dropped webhook.
	Attempts int
	// HTTPStatus is the receiver's answer to the last attempt; 0 when it
	// did not answer.
	HTTPStatus int
	// Delivered reports whether an attempt was answered with a 2xx.
	Delivered bool
	// Done reports whether the sandbox has finished with this webhook.
	Done bool
	// Fault lists, in ParseFaults syntax, the knobs that shaped this
	// webhook: drop_webhook, duplicate_webhook (both copies are recorded),
	// delay_webhook=D, reorder_webhooks (the one sent late); empty for a
	// plain webhook.
	Fault string
}
