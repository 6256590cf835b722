package liqpay

import (
	"maps"
	"math/big"
	"strconv"
	"time"
)

// Payment statuses the sandbox produces (holds.md §1.9).
const (
	statusHoldWait   = "hold_wait"
	statusOTPVerify  = "otp_verify"
	status3DSVerify  = "3ds_verify"
	statusCVVVerify  = "cvv_verify"
	statusProcessing = "processing"
	statusSuccess    = "success"
	statusFailure    = "failure"
	statusReversed   = "reversed"
	statusError      = "error"
)

// acqID is the acquirer id every sandbox payment reports.
const acqID = 414963

// orderKey identifies a payment: order_id is unique per merchant.
type orderKey struct {
	publicKey string
	orderID   string
}

// payment is one hold and everything that happened to it since. It is only
// touched with Server.mu held.
type payment struct {
	key        orderKey
	privateKey string
	id         int64
	desc       string
	currency   string
	amount     *big.Rat
	card       card
	phone      string
	ip         string
	senderName [2]string // first, last
	serverURL  string
	redirectTo string
	token      string // confirm_token; shown only while a *_verify status lasts
	sandbox    bool
	faults     Faults // knobs sent with the hold; they follow the payment

	status      string
	errCode     string
	description string
	is3DS       bool
	otpFailures int
	created     time.Time
	ended       time.Time

	pendingUntil time.Time // zero: a pending payment stays processing
	resolution   verdict   // what a pending payment becomes

	captured    *big.Rat // set once completed
	completedAt time.Time
	refunded    *big.Rat // set once a completed payment is refunded
	refundedAt  time.Time

	fixed map[string]any // object's unchanging fields, once rendered; never handed out

	lastDelivery chan struct{} // closed when the latest callback is done
	heldBack     *notice       // a callback kept back by reorder_callbacks
}

// apply moves the payment to the verdict's status at time at.
func (p *payment) apply(v verdict, at time.Time) {
	p.status = v.status
	p.errCode = v.errCode
	p.description = v.description
	p.is3DS = p.is3DS || v.is3DS
	p.ended = at
}

// awaitsConfirmation reports whether the payment waits for action confirm.
func (p *payment) awaitsConfirmation() bool {
	switch p.status {
	case statusOTPVerify, status3DSVerify, statusCVVVerify:
		return true
	}
	return false
}

// resolvePending turns a processing hold into its real outcome once its
// pending time has passed; it reports whether the status changed.
func (p *payment) resolvePending(now time.Time) bool {
	if p.status != statusProcessing || p.pendingUntil.IsZero() || now.Before(p.pendingUntil) {
		return false
	}
	p.apply(p.resolution, p.pendingUntil)
	return true
}

// expire releases a hold nobody completed or refunded within validity of its
// create_date. What LiqPay shows then is undocumented; the sandbox says
// reversed with err_code "expired" [inferred]. It reports whether the status
// changed.
func (p *payment) expire(now time.Time, validity time.Duration) bool {
	expiry := p.created.Add(validity)
	if p.status != statusHoldWait || now.Before(expiry) {
		return false
	}
	p.apply(verdict{status: statusReversed, errCode: "expired", description: "hold expired"}, expiry)
	return true
}

// object renders the payment as LiqPay's payment object (holds.md §1.3):
// the body of status replies and callbacks. It never holds the PAN or CVV.
func (p *payment) object() map[string]any {
	if p.fixed == nil {
		p.fixed = p.fixedFields()
	}
	o := make(map[string]any, len(p.fixed)+16)
	maps.Copy(o, p.fixed)
	o["status"] = p.status
	o["is_3ds"] = p.is3DS
	o["mpi_eci"] = mpiECI(p.is3DS)
	o["end_date"] = p.ended.UnixMilli()
	p.addOptional(o)
	return o
}

// fixedFields are the fields of the payment object that never change,
// rendered once: each object then copies them instead of converting every
// value to an interface again.
func (p *payment) fixedFields() map[string]any {
	return map[string]any{
		"action":              "hold",
		"type":                "hold",
		"version":             3,
		"payment_id":          p.id,
		"transaction_id":      p.id,
		"acq_id":              acqID,
		"order_id":            p.key.orderID,
		"liqpay_order_id":     liqpayOrderID(p.id),
		"public_key":          p.key.publicKey,
		"amount":              decimal(p.amount),
		"currency":            p.currency,
		"description":         p.desc,
		"sender_card_mask2":   p.card.mask2,
		"sender_card_type":    p.card.kind,
		"sender_card_bank":    p.card.bank,
		"sender_card_country": p.card.country,
		"sender_phone":        p.phone,
		"create_date":         p.created.UnixMilli(),
		"ip":                  p.ip,
		"sender_commission":   0,
		"receiver_commission": 0,
		"agent_commission":    0,
	}
}

// addOptional adds the fields that only some payments carry.
func (p *payment) addOptional(o map[string]any) {
	setIf(o, "sender_first_name", p.senderName[0])
	setIf(o, "sender_last_name", p.senderName[1])
	setIf(o, "err_code", p.errCode)
	setIf(o, "err_description", p.description)
	if p.sandbox {
		o["sandbox"] = 1
	}
	if p.awaitsConfirmation() {
		o["token"] = p.token
	}
	if p.status == status3DSVerify {
		o["redirect_to"] = p.redirectTo
	}
	if p.captured != nil {
		o["amount_debit"] = decimal(p.captured)
		o["amount_credit"] = decimal(p.captured)
		o["currency_debit"] = p.currency
		o["currency_credit"] = p.currency
		o["commission_debit"] = 0
		o["commission_credit"] = 0
		o["completion_date"] = p.completedAt.UnixMilli()
	}
	if p.refunded != nil {
		o["refund_amount"] = decimal(p.refunded)
		o["refund_date_last"] = p.refundedAt.UnixMilli()
	}
}

// setIf sets o[key] = value unless value is empty.
func setIf(o map[string]any, key, value string) {
	if value != "" {
		o[key] = value
	}
}

// mpiECI is the e-commerce indicator: 5 for a 3-D Secure authenticated
// payment, 7 otherwise.
func mpiECI(is3DS bool) int {
	if is3DS {
		return 5
	}
	return 7
}

// liqpayOrderID derives LiqPay's own order reference from the payment id.
func liqpayOrderID(id int64) string {
	return "SBX" + strconv.FormatInt(id, 10)
}
