package via

import (
	"strconv"
	"time"
)

// endpoint handles one endpoint. It runs with Server.mu held and returns
// the reply.
type endpoint func(s *Server, x *exchange) (reply, *apiError)

// endpoints maps each route to its handler.
var endpoints = map[string]endpoint{
	PathCreate:  (*Server).create,
	PathConfirm: (*Server).confirm,
	PathCancel:  (*Server).cancelHold,
	PathInfo:    (*Server).info,
}

// dispatch runs the request's endpoint and renders its answer.
func (s *Server) dispatch(x *exchange) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	answer, err := endpoints[x.route](s, x)
	if err != nil {
		return s.failure(x.call, x.path, err)
	}
	return answer
}

// create places a hold (holds.md §2.2). The reply always says NEW, as the
// documentation's example does; the hold then moves on by the sandbox
// clock (see pendingFor). externalId is the idempotency key per merchant
// (holds.md §2.4): the same body again answers the original holdId with
// its current status, a different body is EXTERNAL_ID_CONFLICT.
func (s *Server) create(x *exchange) (reply, *apiError) {
	req, err := s.readCreate(x)
	if err != nil {
		return reply{}, err
	}
	if !s.merchants[req.merchantID] {
		return reply{}, fail(CodeMerchantNotFound, "unknown merchantId "+req.merchantID)
	}
	key := externalKey{x.partner, req.merchantID, req.externalID}
	if h := s.byExternal[key]; h != nil {
		return s.replayCreate(x, h, req)
	}
	outcome, known := s.cfg.Cards[req.cardToken]
	if !known {
		return reply{}, fail(CodeCardNotFound, "unknown cardToken")
	}
	h := s.newHold(x, req, outcome)
	s.byExternal[key] = h
	return success(x.call, StatusNew, holdData{HoldID: h.id, Status: StatusNew}), nil
}

// readCreate validates a create body and notes its identifiers in the call.
func (s *Server) readCreate(x *exchange) (createRequest, *apiError) {
	var req createRequest
	var err *apiError
	b := x.body
	if req.merchantID, err = b.need("merchantId"); err != nil {
		return req, err
	}
	x.call.MerchantID = req.merchantID
	if req.externalID, err = readExternalID(b); err != nil {
		return req, err
	}
	x.call.ExternalID = req.externalID
	if req.cardToken, err = b.need("cardToken"); err != nil {
		return req, err
	}
	if req.amount, err = b.needInteger("amount"); err != nil {
		return req, err
	}
	x.call.Amount = req.amount
	return req, s.readCreateRest(b, &req)
}

// readExternalID reads the partner's request id.
func readExternalID(b fields) (string, *apiError) {
	id, err := b.need("externalId")
	if err == nil && len(id) > maxExternalID {
		err = invalid("externalId: longer than " + strconv.Itoa(maxExternalID) + " characters")
	}
	return id, err
}

// readCreateRest validates currency, note, accounts and holdTime.
func (s *Server) readCreateRest(b fields, req *createRequest) *apiError {
	var err *apiError
	if req.currency, err = b.need("currency"); err != nil {
		return err
	}
	if req.currency != "UZS" {
		return invalid(`currency: only "UZS" is supported`)
	}
	if req.note, err = b.str("note"); err != nil {
		return err
	}
	if req.accounts, err = b.accounts(); err != nil {
		return err
	}
	req.holdTime, err = s.readHoldTime(b)
	return err
}

// readHoldTime reads the optional holdTime in Config.HoldTimeUnit
// (minutes, as documented; holds.md §2.2 notes the 3600-in-the-example
// ambiguity).
func (s *Server) readHoldTime(b fields) (time.Duration, *apiError) {
	n, ok, err := b.integer("holdTime")
	if err != nil || !ok {
		return s.cfg.DefaultHoldTime, err
	}
	if n > int64(MaxHoldTime/s.cfg.HoldTimeUnit) {
		return 0, invalid("holdTime: longer than the sandbox's limit of " + MaxHoldTime.String())
	}
	return time.Duration(n) * s.cfg.HoldTimeUnit, nil
}

// replayCreate answers a create whose externalId is already used.
func (s *Server) replayCreate(x *exchange, h *hold, req createRequest) (reply, *apiError) {
	if h.req != req {
		return reply{}, fail(CodeExternalIDConflict,
			"externalId "+req.externalID+" was already used for hold "+h.id+" with a different body")
	}
	s.settle(h, x.now, x.gate)
	x.call.HoldID, x.call.Replay = h.id, true
	return success(x.call, h.status, holdData{HoldID: h.id, Status: h.status}), nil
}

// newHold stores a new hold and schedules its way to the card's outcome:
// NEW at once, CREATE_PENDING after the pending time, the outcome after
// twice the pending time; with no pending time the outcome follows NEW at
// once. A card or knob that keeps the hold pending stops at CREATE_PENDING.
func (s *Server) newHold(x *exchange, req createRequest, outcome Outcome) *hold {
	id := newID(HoldIDPrefix, x.now)
	for s.holds[id] != nil {
		id = newID(HoldIDPrefix, x.now)
	}
	h := &hold{
		id:        id,
		partner:   x.partner,
		req:       req,
		faults:    x.faults,
		createdAt: x.now,
		expiresAt: x.now.Add(req.holdTime),
	}
	x.call.HoldID = id
	s.holds[id] = h
	final := StatusCreateSuccess
	if outcome == OutcomeInsufficientFunds || x.faults.CreateError {
		final = StatusCreateError
	}
	wait, forever := s.pendingFor(x.faults)
	forever = forever || outcome == OutcomePending
	h.steps = []step{{at: x.now, status: StatusNew, faults: x.faults}}
	if wait > 0 || forever {
		h.steps = append(h.steps, step{at: x.now.Add(wait), status: StatusCreatePending, faults: x.faults})
	}
	if !forever {
		h.steps = append(h.steps, step{at: x.now.Add(2 * wait), status: final, faults: x.faults})
	}
	s.settle(h, x.now, x.gate)
	return h
}

// pendingFor is how long the operation a request starts stays pending, or
// forever: Config.PendingFor, unless the pending knob says otherwise.
func (s *Server) pendingFor(f Faults) (wait time.Duration, forever bool) {
	switch {
	case f.Pending && f.PendingFor > 0:
		return f.PendingFor, false
	case f.Pending:
		return s.cfg.PendingFor, true
	}
	return s.cfg.PendingFor, false
}

// begin starts a confirm or cancel on a capturable hold: the pending status
// for the pending time and then the outcome, or the outcome at once when
// there is no pending time.
func (s *Server) begin(x *exchange, h *hold, pending, final string) {
	wait, forever := s.pendingFor(x.faults)
	switch {
	case forever:
		h.steps = []step{{at: x.now, status: pending, faults: x.faults}}
	case wait == 0:
		h.steps = []step{{at: x.now, status: final, faults: x.faults}}
	default:
		h.steps = []step{
			{at: x.now, status: pending, faults: x.faults},
			{at: x.now.Add(wait), status: final, faults: x.faults},
		}
	}
	s.settle(h, x.now, x.gate)
}

// lookup reads holdId and finds the partner's hold with its clock-driven
// transitions applied. Another partner's hold is HOLD_NOT_FOUND.
func (s *Server) lookup(x *exchange) (*hold, *apiError) {
	id, err := holdID(x.query, x.body)
	if err != nil {
		return nil, err
	}
	x.call.HoldID = id
	h := s.holds[id]
	if h == nil || h.partner != x.partner {
		return nil, fail(CodeHoldNotFound, "no hold "+id)
	}
	x.call.ExternalID, x.call.MerchantID = h.req.externalID, h.req.merchantID
	s.settle(h, x.now, x.gate)
	return h, nil
}

// confirm withdraws amount from a capturable hold (holds.md §2.2): at most
// the held amount, once; the rest is released [inferred, §5.2 rule 1].
// Repeating the confirm that is pending or done (same amount) answers the
// current status again [§5.2 rule 3]; any other confirm of a hold that is
// not capturable is INVALID_STATE. A confirm after CONFIRM_ERROR or
// CANCEL_ERROR is a new attempt.
func (s *Server) confirm(x *exchange) (reply, *apiError) {
	amount, err := x.body.needInteger("amount")
	if err != nil {
		return reply{}, err
	}
	x.call.Amount = amount
	h, err := s.lookup(x)
	if err != nil {
		return reply{}, err
	}
	repeat := h.status == StatusConfirmPending || h.status == StatusConfirmSuccess
	switch {
	case repeat && h.confirming == amount:
		return s.replay(x, h), nil
	case !h.capturable():
		return reply{}, fail(CodeInvalidState, "cannot confirm a hold in status "+h.status)
	case amount > h.req.amount:
		return reply{}, fail(CodeAmountExceedsHold,
			"amount "+strconv.FormatInt(amount, 10)+" exceeds the held "+strconv.FormatInt(h.req.amount, 10))
	}
	h.confirming = amount
	final := StatusConfirmSuccess
	if x.faults.ConfirmError {
		final = StatusConfirmError
	}
	s.begin(x, h, StatusConfirmPending, final)
	return success(x.call, h.status, holdData{HoldID: h.id, Status: h.status}), nil
}

// cancelHold releases a capturable hold (holds.md §2.2). Repeating a cancel
// that is pending or done answers the current status again; cancelling a
// hold that is not capturable is INVALID_STATE (after a capture that would
// be a refund, which is not a hold operation; §5.2 rule 4).
func (s *Server) cancelHold(x *exchange) (reply, *apiError) {
	h, err := s.lookup(x)
	if err != nil {
		return reply{}, err
	}
	switch {
	case h.status == StatusCancelPending || h.status == StatusCancelSuccess:
		return s.replay(x, h), nil
	case !h.capturable():
		return reply{}, fail(CodeInvalidState, "cannot cancel a hold in status "+h.status)
	}
	final := StatusCancelSuccess
	if x.faults.CancelError {
		final = StatusCancelError
	}
	s.begin(x, h, StatusCancelPending, final)
	return success(x.call, h.status, holdData{HoldID: h.id, Status: h.status}), nil
}

// replay answers a repeated confirm or cancel with the hold's current
// status; it changes nothing.
func (s *Server) replay(x *exchange, h *hold) reply {
	x.call.Replay = true
	return success(x.call, h.status, holdData{HoldID: h.id, Status: h.status})
}

// info reads a hold (holds.md §2.2) with the sandbox's extra fields.
func (s *Server) info(x *exchange) (reply, *apiError) {
	h, err := s.lookup(x)
	if err != nil {
		return reply{}, err
	}
	return success(x.call, h.status, h.info()), nil
}

// settle applies the hold's due clock-driven status changes in order,
// announcing each, and arms the hold's timer for the next one. gate holds
// their webhooks back until the current reply is out.
func (s *Server) settle(h *hold, now time.Time, gate chan struct{}) {
	for {
		st, ok := h.advance(now)
		if !ok {
			break
		}
		s.announce(h, st.faults, gate)
	}
	s.arm(h, now)
}

// arm starts the hold's real-time timer for its next status change, so
// that with a real clock the change happens (and its webhook goes) without
// anyone asking. Each scheduled change gets one timer at most: with a fake
// clock the timer finds nothing due and is not re-armed, and Sweep or a
// request does the work instead.
func (s *Server) arm(h *hold, now time.Time) {
	st, ok := h.next()
	if !ok || s.closed {
		h.stopTimer()
		return
	}
	if h.timer != nil && h.armed.at.Equal(st.at) && h.armed.status == st.status {
		return
	}
	h.stopTimer()
	h.armed = st
	h.timer = time.AfterFunc(max(st.at.Sub(now), time.Millisecond), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.closed {
			s.settle(h, s.cfg.Clock(), s.opened)
		}
	})
}
