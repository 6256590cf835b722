package liqpay

import "time"

// Call records one request the sandbox answered (or, with the timeout knob,
// refused to answer).
type Call struct {
	// Time is the sandbox-clock time the request arrived.
	Time time.Time
	// Path is the request path as routed: /api/request or
	// /api/payment/status (or whatever was not found).
	Path string
	// Action, OrderID and PublicKey are copied from the request; empty when
	// the request could not be decoded.
	Action    string
	OrderID   string
	PublicKey string
	// HTTPStatus is the HTTP status sent; 0 when nothing was sent.
	HTTPStatus int
	// Result and Status are the reply's result and status fields.
	Result string
	Status string
	// ErrCode is the reply's err_code, if any.
	ErrCode string
	// Faults are the knobs in force for the request, in ParseFaults syntax.
	Faults string
}

// Delivery records one callback: the sandbox's attempts to POST one status
// change of one payment to its server_url.
type Delivery struct {
	// Time is the sandbox-clock time of the status change.
	Time time.Time
	// URL is the payment's server_url.
	URL string
	// OrderID and PaymentID identify the payment.
	OrderID   string
	PaymentID int64
	// Status is the payment status the callback announces.
	Status string
	// Attempts is how many POSTs were made so far; 0 for a dropped callback.
	Attempts int
	// HTTPStatus is the receiver's answer to the last attempt; 0 when it
	// did not answer.
	HTTPStatus int
	// Delivered reports whether an attempt was answered with a 2xx.
	Delivered bool
	// Done reports whether the sandbox has finished with this callback.
	Done bool
	// Fault lists, in ParseFaults syntax, the knobs that shaped this
	// callback: drop_callback, duplicate_callback (both copies are
	// recorded), bad_signature_callback, reorder_callbacks (the one sent
	// late); empty for a plain callback.
	Fault string
}
