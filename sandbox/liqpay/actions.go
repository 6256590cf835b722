package liqpay

import (
	"crypto/rand"
	"crypto/subtle"
	"math/big"
	"net/url"
	"time"
)

// action handles one LiqPay action. It runs with Server.mu held and returns
// the reply body.
type action func(s *Server, x *exchange) map[string]any

// actions are the actions the sandbox knows.
var actions = map[string]action{
	"hold":            (*Server).hold,
	"confirm":         (*Server).confirm,
	"hold_completion": (*Server).holdCompletion,
	"refund":          (*Server).refund,
	"status":          (*Server).status,
}

// dispatch checks the fields every request needs and runs its action.
func (s *Server) dispatch(x *exchange) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if x.action == "" {
		return errorReply(errCode("err_api_action", "parameter action is missing"))
	}
	handle, ok := actions[x.action]
	if !ok {
		return errorReply(errCode("err_api_action", "unknown action "+x.action))
	}
	version, err := x.params.need("version")
	if err != nil {
		return errorReply(err)
	}
	if version != "3" {
		return errorReply(errWrong("version", "only version 3 is supported"))
	}
	return handle(s, x)
}

// reply is the answer carrying a payment object: result is "error" when the
// payment failed, "ok" otherwise.
func reply(p *payment) map[string]any {
	body := p.object()
	body["result"] = "ok"
	if p.status == statusFailure || p.status == statusError {
		body["result"] = "error"
	}
	return body
}

// holdRequest is a validated hold. It holds no PAN or CVV: those are judged
// and masked while reading and then forgotten.
type holdRequest struct {
	orderID   string
	amount    *big.Rat
	currency  string
	desc      string
	card      card
	verdict   verdict
	phone     string
	ip        string
	first     string
	last      string
	serverURL string
}

// hold blocks funds on a card (holds.md §1.3). The card number decides the
// outcome (§1.2). order_id is unique per merchant: any second hold with the
// same order_id, even a byte-for-byte repeat of an accepted one sent again
// after a client timeout, gets order_id_duplicate, as LiqPay answers; a
// client unsure whether its hold went through must ask action status.
func (s *Server) hold(x *exchange) map[string]any {
	h, err := readHold(x.params, x.now)
	if err != nil {
		return errorReply(err)
	}
	if _, dup := s.payments[orderKey{x.publicKey, h.orderID}]; dup {
		return errorReply(errCode("order_id_duplicate", "order_id "+h.orderID+" is already used"))
	}
	if h.verdict.status == statusError {
		return errorReply(errCode(h.verdict.errCode, h.verdict.description))
	}
	if x.params.flag("prepare") {
		return prepareReply(h)
	}
	p := s.newPayment(x, h)
	s.announce(p, x.faults, x.gate)
	return reply(p)
}

// readHold validates a hold request's parameters.
func readHold(p params, now time.Time) (holdRequest, *apiError) {
	var h holdRequest
	var err *apiError
	if h.orderID, err = readOrderID(p); err != nil {
		return h, err
	}
	if h.amount, h.currency, err = readMoney(p); err != nil {
		return h, err
	}
	if h.desc, err = p.need("description"); err != nil {
		return h, err
	}
	if h.card, h.verdict, err = readCard(p, now); err != nil {
		return h, err
	}
	if h.phone, err = p.need("phone"); err != nil {
		return h, err
	}
	if !validPhone(h.phone) {
		return h, errCode("err_phone", "phone must be in international format, e.g. 380950000001")
	}
	return h, readExtras(p, &h)
}

// readOrderID reads the merchant's order_id (at most 255 characters).
func readOrderID(p params) (string, *apiError) {
	id, err := p.need("order_id")
	if err == nil && len(id) > 255 {
		err = errWrong("order_id", "longer than 255 characters")
	}
	return id, err
}

// readMoney reads amount and currency.
func readMoney(p params) (*big.Rat, string, *apiError) {
	text, err := p.need("amount")
	if err != nil {
		return nil, "", err
	}
	amount, err := parseAmount("amount", text)
	if err != nil {
		return nil, "", err
	}
	currency, err := p.need("currency")
	if err != nil {
		return nil, "", err
	}
	switch currency {
	case "UAH", "USD", "EUR":
		return amount, currency, nil
	}
	return nil, "", errCode("err_wrong_currency", "currency must be UAH, USD or EUR")
}

// readCard validates the card fields and judges the card. The PAN and CVV
// do not leave this function: only the mask and the verdict do.
func readCard(p params, now time.Time) (card, verdict, *apiError) {
	raw, err := p.need("card")
	if err != nil {
		return card{}, verdict{}, err
	}
	month, err := p.need("card_exp_month")
	if err != nil {
		return card{}, verdict{}, err
	}
	year, err := p.need("card_exp_year")
	if err != nil {
		return card{}, verdict{}, err
	}
	expired, err := cardExpired(month, year, now)
	if err != nil {
		return card{}, verdict{}, err
	}
	cvv, err := p.need("card_cvv")
	if err != nil {
		return card{}, verdict{}, err
	}
	if !validCVV(cvv) {
		return card{}, verdict{}, errWrong("card_cvv", "expected 3 or 4 digits")
	}
	return judge(raw, expired)
}

// judge masks a card number and decides what holding funds on it gives.
func judge(raw string, expired bool) (card, verdict, *apiError) {
	bad := verdict{status: statusError, errCode: "err_card", description: "invalid card number"}
	pan, ok := normalizePAN(raw)
	if !ok {
		return card{}, bad, nil
	}
	v, ok := judgeCard(pan)
	if !ok {
		return card{}, bad, nil
	}
	if expired {
		v = verdict{status: statusFailure, errCode: "9851", description: "card expired"}
	}
	return describeCard(pan), v, nil
}

// readExtras reads the optional hold parameters the sandbox keeps.
func readExtras(p params, h *holdRequest) *apiError {
	var err *apiError
	if h.ip, err = p.get("ip"); err != nil {
		return err
	}
	if h.first, err = p.get("sender_first_name"); err != nil {
		return err
	}
	if h.last, err = p.get("sender_last_name"); err != nil {
		return err
	}
	if _, err = readURL(p, "result_url"); err != nil {
		return err
	}
	h.serverURL, err = readURL(p, "server_url")
	return err
}

// readURL reads an optional absolute http(s) URL of at most 510 characters.
func readURL(p params, key string) (string, *apiError) {
	raw, err := p.get(key)
	if err != nil || raw == "" {
		return "", err
	}
	u, parseErr := url.Parse(raw)
	if parseErr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(raw) > 510 {
		return "", errCode("err_path", key+" must be an absolute http(s) URL of at most 510 characters")
	}
	return raw, nil
}

// prepareReply answers a hold with prepare=1: what the hold would give,
// without creating a payment (holds.md §1.3).
func prepareReply(h holdRequest) map[string]any {
	body := map[string]any{
		"result":            "ok",
		"action":            "hold",
		"status":            h.verdict.status,
		"order_id":          h.orderID,
		"amount":            decimal(h.amount),
		"currency":          h.currency,
		"description":       h.desc,
		"sender_card_mask2": h.card.mask2,
		"is_3ds":            h.verdict.is3DS,
	}
	if h.verdict.errCode != "" {
		body["result"] = "error"
		body["err_code"] = h.verdict.errCode
		body["err_description"] = h.verdict.description
	}
	return body
}

// newPayment stores a new payment for a validated hold.
func (s *Server) newPayment(x *exchange, h holdRequest) *payment {
	s.lastID++
	p := &payment{
		key:        orderKey{x.publicKey, h.orderID},
		privateKey: x.privateKey,
		id:         s.lastID,
		desc:       h.desc,
		currency:   h.currency,
		amount:     h.amount,
		card:       h.card,
		phone:      h.phone,
		ip:         h.ip,
		senderName: [2]string{h.first, h.last},
		serverURL:  h.serverURL,
		redirectTo: x.base + "/3ds/" + liqpayOrderID(s.lastID),
		token:      rand.Text(),
		sandbox:    x.params.flag("sandbox"),
		faults:     x.faults,
		created:    x.now,
	}
	p.apply(h.verdict, x.now)
	if x.faults.Pending {
		s.makePending(p, x.faults.PendingFor)
	}
	s.payments[p.key] = p
	s.tokens[p.token] = p
	return p
}

// makePending parks a new payment in processing. With a duration it
// resolves to its real outcome that much sandbox time after create_date:
// lazily when next touched, and by a real-time timer for a real clock.
func (s *Server) makePending(p *payment, after time.Duration) {
	p.resolution = verdict{status: p.status, errCode: p.errCode, description: p.description, is3DS: p.is3DS}
	p.status, p.errCode, p.description = statusProcessing, "", ""
	if after <= 0 {
		return
	}
	p.pendingUntil = p.created.Add(after)
	s.timers = append(s.timers, time.AfterFunc(after, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.closed {
			s.settle(p, s.cfg.Clock(), s.opened)
		}
	}))
}

// find returns the merchant's payment for order_id with its clock-driven
// transitions applied, or nil.
func (s *Server) find(x *exchange, orderID string) *payment {
	p := s.payments[orderKey{x.publicKey, orderID}]
	if p != nil {
		s.settle(p, x.now, x.gate)
	}
	return p
}

// lookup reads order_id and finds its payment, or says why it cannot.
func (s *Server) lookup(x *exchange) (*payment, *apiError) {
	orderID, err := x.params.need("order_id")
	if err != nil {
		return nil, err
	}
	p := s.find(x, orderID)
	if p == nil {
		return nil, errCode("payment_not_found", "no payment with order_id "+orderID)
	}
	return p, nil
}

// settle applies the payment's due clock-driven transitions and announces
// each; gate holds their callbacks back until the current reply is out.
func (s *Server) settle(p *payment, now time.Time, gate chan struct{}) {
	if p.resolvePending(now) {
		s.announce(p, Faults{}, gate)
	}
	if p.expire(now, s.cfg.HoldValidity) {
		s.announce(p, Faults{}, gate)
	}
}

// errStatus is the answer to an action the payment's status does not allow.
func errStatus(p *payment) map[string]any {
	return errorReply(errCode("payment_err_status", "not allowed while the payment is "+p.status))
}

// confirm completes an OTP, 3-D Secure or CVV check (holds.md §1.4). The
// confirm_token is the payment object's token field [inferred]; both token
// and confirm_token are accepted.
func (s *Server) confirm(x *exchange) map[string]any {
	token, err := readToken(x.params)
	if err != nil {
		return errorReply(err)
	}
	p := s.tokens[token]
	if p == nil || p.key.publicKey != x.publicKey {
		return errorReply(errCode("payment_not_found", "unknown confirm token"))
	}
	s.settle(p, x.now, x.gate)
	if !p.awaitsConfirmation() {
		return errStatus(p)
	}
	if body := s.check(x, p); body != nil {
		return body
	}
	p.apply(verdict{status: statusHoldWait}, x.now)
	s.announce(p, x.faults, x.gate)
	return reply(p)
}

// readToken reads token, or confirm_token when token is absent.
func readToken(p params) (string, *apiError) {
	token, err := p.get("token")
	if err != nil || token != "" {
		return token, err
	}
	if token, err = p.get("confirm_token"); err != nil || token != "" {
		return token, err
	}
	return "", errMissing("confirm_token")
}

// check verifies what the payment's *_verify status asks for. It returns
// nil when the confirmation may proceed, or the reply refusing it.
func (s *Server) check(x *exchange, p *payment) map[string]any {
	switch p.status {
	case statusOTPVerify:
		return s.checkOTP(x, p)
	case statusCVVVerify:
		cvv, err := x.params.need("card_cvv")
		if err == nil && !validCVV(cvv) {
			err = errWrong("card_cvv", "expected 3 or 4 digits")
		}
		if err != nil {
			return errorReply(err)
		}
	}
	return nil
}

// checkOTP compares the OTP in constant time. A wrong one is answered with
// err_sms_otp and the payment stays otp_verify; the MaxOTPAttempts-th wrong
// one fails the payment with err_sms_otp [inferred].
func (s *Server) checkOTP(x *exchange, p *payment) map[string]any {
	otp, err := x.params.need("otp")
	if err != nil {
		return errorReply(err)
	}
	if subtle.ConstantTimeCompare([]byte(otp), []byte(s.cfg.OTP)) == 1 {
		return nil
	}
	p.otpFailures++
	if p.otpFailures >= MaxOTPAttempts {
		p.apply(verdict{status: statusFailure, errCode: "err_sms_otp", description: "wrong OTP entered too many times"}, x.now)
		s.announce(p, x.faults, x.gate)
		return reply(p)
	}
	body := reply(p)
	body["result"] = "error"
	body["err_code"] = "err_sms_otp"
	body["err_description"] = "wrong OTP"
	return body
}

// holdCompletion captures a hold_wait payment (holds.md §1.5): amount
// omitted captures it all, a smaller amount captures part and releases the
// rest, a larger one is err_amount_hold. Repeating the completion that
// already succeeded (same effective amount) replays the stored success
// object instead of failing, so a client that timed out can safely retry;
// any other completion of a completed payment is payment_err_status.
func (s *Server) holdCompletion(x *exchange) map[string]any {
	p, err := s.lookup(x)
	if err != nil {
		return errorReply(err)
	}
	amount, err := x.params.optionalAmount("amount")
	if err != nil {
		return errorReply(err)
	}
	if amount == nil {
		amount = p.amount
	}
	switch {
	case p.status == statusSuccess && p.captured.Cmp(amount) == 0:
		return reply(p)
	case p.status != statusHoldWait:
		return errStatus(p)
	case amount.Cmp(p.amount) > 0:
		return errorReply(errCode("err_amount_hold", "amount may not exceed the held amount"))
	}
	p.captured, p.completedAt = amount, x.now
	p.apply(verdict{status: statusSuccess}, x.now)
	s.announce(p, x.faults, x.gate)
	return reply(p)
}

// refund releases a hold or refunds a completed one (holds.md §1.6); both
// end reversed. Releasing a hold always releases all of it; refunding a
// completed payment may be partial (refund_amount). Refunding a reversed
// payment again replays the stored object.
func (s *Server) refund(x *exchange) map[string]any {
	p, err := s.lookup(x)
	if err != nil {
		return errorReply(err)
	}
	amount, err := x.params.optionalAmount("amount")
	if err != nil {
		return errorReply(err)
	}
	switch p.status {
	case statusReversed:
		return refundReply(p)
	case statusHoldWait:
		if amount != nil && amount.Cmp(p.amount) > 0 {
			return errorReply(errCode("err_amount_hold", "amount may not exceed the held amount"))
		}
	case statusSuccess:
		if amount == nil {
			amount = p.captured
		}
		if amount.Cmp(p.captured) > 0 {
			return errorReply(errCode("err_amount_hold", "amount may not exceed the captured amount"))
		}
		p.refunded, p.refundedAt = amount, x.now
	default:
		return errStatus(p)
	}
	p.apply(verdict{status: statusReversed}, x.now)
	s.announce(p, x.faults, x.gate)
	return refundReply(p)
}

// refundReply adds wait_amount (refund paid from the merchant's balance,
// not from future payments) to the payment reply.
func refundReply(p *payment) map[string]any {
	body := reply(p)
	body["wait_amount"] = false
	return body
}

// status returns the whole payment object (holds.md §1.7).
func (s *Server) status(x *exchange) map[string]any {
	p, err := s.lookup(x)
	if err != nil {
		return errorReply(err)
	}
	return reply(p)
}
