package via

import "time"

// Hold statuses, exactly as VIA documents them on every hold page
// (holds.md §2.2). Statuses returns them in that order.
const (
	StatusNew            = "NEW"             // create accepted
	StatusCreateSuccess  = "CREATE_SUCCESS"  // funds held
	StatusCreatePending  = "CREATE_PENDING"  // hold in progress
	StatusCreateError    = "CREATE_ERROR"    // hold declined
	StatusConfirmSuccess = "CONFIRM_SUCCESS" // funds withdrawn, the rest released
	StatusConfirmPending = "CONFIRM_PENDING" // withdrawal in progress
	StatusConfirmError   = "CONFIRM_ERROR"   // withdrawal failed; the hold is still capturable
	StatusCancelSuccess  = "CANCEL_SUCCESS"  // hold released
	StatusCancelPending  = "CANCEL_PENDING"  // release in progress
	StatusCancelError    = "CANCEL_ERROR"    // release failed; the hold is still capturable
	StatusExpired        = "EXPIRED"         // hold time elapsed
)

// Statuses returns the eleven hold statuses in the documentation's order.
func Statuses() []string {
	return []string{
		StatusNew, StatusCreateSuccess, StatusCreatePending, StatusCreateError,
		StatusConfirmSuccess, StatusConfirmPending, StatusConfirmError,
		StatusCancelSuccess, StatusCancelPending, StatusCancelError, StatusExpired,
	}
}

// externalKey identifies a create for idempotency: externalId is unique per
// merchant, within one partner's view.
type externalKey struct {
	partner    string
	merchantID string
	externalID string
}

// createRequest is a validated create body, in a comparable form: two
// creates with the same externalKey are the same request exactly when their
// createRequests are equal. The card token is kept only for that
// comparison; it is never logged or returned.
type createRequest struct {
	merchantID string
	cardToken  string
	externalID string
	amount     int64
	currency   string
	note       string
	accounts   string // canonical JSON
	holdTime   time.Duration
}

// step is one scheduled status change.
type step struct {
	at     time.Time
	status string
	faults Faults // knobs of the request that scheduled it, for its webhook
}

// hold is one hold and everything that happened to it since. It is only
// touched with Server.mu held.
type hold struct {
	id      string
	partner string
	req     createRequest
	faults  Faults // knobs sent with the create; they follow the hold's webhooks

	status    string
	updatedAt time.Time
	createdAt time.Time
	expiresAt time.Time
	steps     []step // pending status changes, oldest first

	confirming int64 // amount of the latest confirm (in flight or done)
	confirmed  int64 // amount captured; set on CONFIRM_SUCCESS

	timer        *time.Timer   // fires at the armed step
	armed        step          // the change timer was started for
	lastDelivery chan struct{} // closed when the latest webhook is done
	heldBack     *notice       // a webhook kept back by reorder_webhooks
}

// capturable reports whether funds are held and may be confirmed or
// cancelled: after CREATE_SUCCESS, and after a failed confirm or cancel,
// which leave the hold as it was (holds.md §5.1).
func (h *hold) capturable() bool {
	switch h.status {
	case StatusCreateSuccess, StatusConfirmError, StatusCancelError:
		return len(h.steps) == 0
	}
	return false
}

// next returns the hold's next clock-driven status change: its next
// scheduled step, or expiry for a capturable hold. A capturable hold expires
// at expiresAt, or at once if it became capturable only after that.
func (h *hold) next() (step, bool) {
	if len(h.steps) > 0 {
		return h.steps[0], true
	}
	if h.capturable() {
		return step{at: later(h.expiresAt, h.updatedAt), status: StatusExpired}, true
	}
	return step{}, false
}

// advance applies the next status change if it is due by now.
func (h *hold) advance(now time.Time) (step, bool) {
	st, ok := h.next()
	if !ok || now.Before(st.at) {
		return step{}, false
	}
	if len(h.steps) > 0 {
		h.steps = h.steps[1:]
	}
	h.status, h.updatedAt = st.status, st.at
	if st.status == StatusConfirmSuccess {
		h.confirmed = h.confirming
	}
	return st, true
}

// stopTimer stops and forgets the hold's timer, if any.
func (h *hold) stopTimer() {
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
}

// later returns the later of two times.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// holdData is the data of create, confirm and cancel replies.
type holdData struct {
	HoldID string `json:"holdId"`
	Status string `json:"status"`
}

// infoData is the data of an info reply: the documented holdId and status,
// plus sandbox extras [inferred] a client may use but VIA does not promise.
type infoData struct {
	HoldID          string `json:"holdId"`
	Status          string `json:"status"`
	Amount          int64  `json:"amount"`
	ConfirmedAmount int64  `json:"confirmedAmount"`
	ExternalID      string `json:"externalId"`
	CreatedAt       int64  `json:"createdAt"`
	ExpiresAt       int64  `json:"expiresAt"`
}

// info renders the hold for /partner/hold/info.
func (h *hold) info() infoData {
	return infoData{
		HoldID:          h.id,
		Status:          h.status,
		Amount:          h.req.amount,
		ConfirmedAmount: h.confirmed,
		ExternalID:      h.req.externalID,
		CreatedAt:       h.createdAt.Unix(),
		ExpiresAt:       h.expiresAt.Unix(),
	}
}

// dataReply wraps a success reply's data as VIA does: {"data": ...}.
type dataReply struct {
	Data any `json:"data"`
}
