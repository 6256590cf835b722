package lifecycle

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"pgregory.net/rapid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
	"github.com/conveyor-dev/conveyor/sandbox/via"
	"github.com/conveyor-dev/conveyor/store"
)

// TestLifecycle_properties drives each hold lifecycle through random
// sequences of merchant commands, provider faults, clock moves and engine
// restarts or crashes, brings the task to rest and checks, against the
// simulator's own records and state:
//
//  1. the provider never captured more than it held, and the flow never
//     even asked it to;
//  2. never two terminal outcomes: a task that reached one of captured,
//     released, expired, declined stays there, enters no other, and the
//     provider's final state agrees with hold_state (and the other way
//     round: funds the provider holds or took belong to a task that says
//     so, or to an operator);
//  3. no stuck task: at rest a task is finished, escalated with an error,
//     or waits with a timer for the merchant; never active without work,
//     never waiting without a timer;
//  4. every provider call is idempotent: one hold per task at the provider,
//     every create of it the same request, no capture or cancel carried out
//     twice, and (LiqPay's confirm has no key) no customer code sent twice
//     but after a crash;
//
// and, after every step, that hold_state is one of the nine neutral states
// and agrees with the node, and that each merchant command got the answer
// its state calls for (a capture above the hold is refused, a valid one
// accepted, none taken by a task that does not wait for the merchant).
//
// Each provider runs propChecks cases (a fifth with -short). For a longer
// hunt: go test ./tests/lifecycle/ -run properties -rapid.checks=1000. A
// failure prints the seed and the drawn steps; rerun it with -rapid.seed=N
// (rapid writes fail files under testdata/ only with -rapid.nofailfile=false).
func TestLifecycle_properties(t *testing.T) {
	// Not parallel: propBudget sets rapid's flag while no other test runs.
	propBudget(t)
	t.Run("LiqPay", func(t *testing.T) {
		t.Parallel()
		l, defs := propLoad(t, lifecycle+".yaml")
		rapid.Check(t, func(rt *rapid.T) { propLiqPayCase(rt, l, defs) })
	})
	t.Run("VIA", func(t *testing.T) {
		t.Parallel()
		l, defs := propLoad(t, viaProcess+".yaml")
		rapid.Check(t, func(rt *rapid.T) { propVIACase(rt, l, defs) })
	})
}

// propRef is every case's task ref, LiqPay order_id and VIA externalId:
// each case has a store and a simulator of its own.
const propRef = "prop-1"

// propAction is one random step.
type propAction struct {
	Kind   string        // command, race, repeat, fault, crash, restart, advance, timer, await, sweep
	Cmd    propCmd       // command, race
	Other  propCmd       // race: the command sent at the same time
	Faults []propFault   // command: installed just before it
	Fault  propFault     // fault
	D      time.Duration // advance
}

func (a propAction) GoString() string {
	switch a.Kind {
	case "command":
		if len(a.Faults) > 0 {
			return fmt.Sprintf("command %s with %#v", a.Cmd.body(), a.Faults)
		}
		return "command " + a.Cmd.body()
	case "fault":
		return a.Fault.GoString()
	case "advance":
		return "advance " + a.D.String()
	case "race":
		return "race " + a.Cmd.body() + " | " + a.Other.body()
	}
	return a.Kind
}

func (f propFault) GoString() string {
	return fmt.Sprintf("fault %s %q lose=%v times=%d", f.target, f.knobs, f.lose, f.times)
}

// propCmd is a merchant command. Raw, when set, is sent as is.
type propCmd struct {
	Command   string
	Amount    string // JSON text; "" for none
	OTP       string // "" for none
	RequestID string // "" for none
	Raw       string
	Repeat    bool // Raw repeats an earlier command
}

func (c propCmd) body() string {
	if c.Raw != "" {
		return c.Raw
	}
	fields := []string{`"command":"` + c.Command + `"`}
	if c.Amount != "" {
		fields = append(fields, `"amount":`+c.Amount)
	}
	if c.OTP != "" {
		fields = append(fields, `"otp":"`+c.OTP+`"`)
	}
	if c.RequestID != "" {
		fields = append(fields, `"request_id":"`+c.RequestID+`"`)
	}
	return "{" + strings.Join(fields, ",") + "}"
}

// propFlow is what the checks need to know of a lifecycle flow.
type propFlow struct {
	// merchant are the nodes that wait for merchant commands, with the
	// hold_state each implies.
	merchant map[string]string
	// pending are the other waiting nodes, with the hold_states they allow.
	pending map[string][]string
	// valid reports whether a task resting in node (a merchant node) takes
	// the command.
	valid func(node string, s snapshot, c propCmd) bool
}

// propRun is one case under way: the system, the task, and what the
// checks remember between steps.
type propRun struct {
	t     *rapid.T
	s     *propSys
	flow  propFlow
	id    uuid.UUID
	last  string // the last command sent
	codes int    // otp commands taken
	final string // "node hold_state status" once finished
}

func newPropRun(t *rapid.T, s *propSys, flow propFlow, id uuid.UUID) *propRun {
	return &propRun{t: t, s: s, flow: flow, id: id}
}

// do runs one step and checks the task once it is at rest again.
func (r *propRun) do(a propAction) {
	r.t.Helper()
	switch a.Kind {
	case "command":
		r.s.settle(r.id)
		for _, f := range a.Faults {
			r.s.proxy.add(f)
		}
		r.command(a.Cmd.body(), a.Cmd)
	case "race":
		r.race(a.Cmd, a.Other)
	case "repeat":
		body := r.last
		if body == "" {
			body = `{"command":"capture"}`
		}
		r.command(body, propCmd{Raw: body, Repeat: true})
	case "fault":
		r.s.proxy.add(a.Fault)
	case "crash":
		r.s.proxy.armStall()
	case "restart":
		r.s.settle(r.id)
		r.s.restart()
	case "advance":
		r.s.advance(a.D)
	case "timer": // exactly to the task's next timer
		if snap := r.s.settle(r.id); !snap.TimerAt.IsZero() {
			r.s.advance(max(snap.TimerAt.Sub(r.s.clock.Now()), 0))
			r.s.sweep()
		}
	case "await": // timer after timer until the merchant may act
		r.s.drive(r.id, false, slices.Collect(maps.Keys(r.flow.merchant))...)
	case "sweep":
		r.s.sweep()
	}
	after := r.s.settle(r.id)
	r.t.Logf("%#v -> %s in %s, hold_state %s", a, after.Status, after.Node, after.get("hold_state"))
	r.step(after)
}

// command sends a merchant command to the resting task and checks the
// answer against the state it found the task in: a task waiting for the
// merchant takes a command its node allows, even one it took before (a
// capture again after a failed one is a new attempt), and refuses any
// other; a task that does not wait for the merchant takes none.
func (r *propRun) command(body string, c propCmd) {
	r.t.Helper()
	before := r.s.settle(r.id)
	r.last = body
	got := r.answer(before, body)
	node := before.Node
	_, merchant := r.flow.merchant[node]
	waiting := merchant && before.Status == store.StatusWaiting
	want := []string{engine.CallbackNotWaiting, engine.CallbackDuplicate, conveyor.EInvalid, conveyor.EUnauthorized}
	switch {
	case !waiting:
	case c.Raw == "" && r.flow.valid(node, before, c), c.Repeat && r.acceptable(node, before, c.Raw):
		want = []string{engine.CallbackAccepted}
	default:
		want = []string{conveyor.EInvalid}
	}
	if !slices.Contains(want, got) {
		r.t.Fatalf("command %s to a task %s in %s (hold_state %s, held %s): %s; want %v",
			body, before.Status, node, before.get("hold_state"), before.get("held_amount"), got, want)
	}
	r.took(body, got)
}

// took counts the customer's codes the task took.
func (r *propRun) took(body, result string) {
	if result == engine.CallbackAccepted && strings.Contains(body, `"command":"otp"`) {
		r.codes++
	}
}

// race sends two commands at once to the resting task. Which one the
// engine takes, and whether the other finds the task busy or back where it
// was, is up to the race; each must still be one a node takes.
func (r *propRun) race(a, b propCmd) {
	r.t.Helper()
	before := r.s.settle(r.id)
	bodies := []string{a.body(), b.body()}
	res := make([]engine.CallbackResult, len(bodies))
	errs := make([]error, len(bodies))
	var wg sync.WaitGroup
	for i, body := range bodies {
		wg.Go(func() { res[i], errs[i] = r.s.command(propRef, body) }) // no Fatalf off the test's goroutine
	}
	wg.Wait()
	for i, body := range bodies {
		r.last = body
		got := r.judge(before, body, res[i], errs[i])
		r.took(body, got)
		if got != engine.CallbackAccepted {
			continue
		}
		ok := false
		for node := range r.flow.merchant {
			ok = ok || r.acceptable(node, before, body)
		}
		if !ok {
			r.t.Fatalf("command %s (racing %s) accepted, but no node takes it", body, bodies[1-i])
		}
	}
}

// answer sends a command and returns the engine's result, or the code it
// was refused with.
func (r *propRun) answer(before snapshot, body string) string {
	res, err := r.s.command(propRef, body)
	return r.judge(before, body, res, err)
}

// judge returns a command's result, or the code it was refused with; any
// other failure ends the case.
func (r *propRun) judge(before snapshot, body string, res engine.CallbackResult, err error) string {
	if err == nil {
		return res.Result
	}
	code := conveyor.ErrorCode(err)
	if code != conveyor.EInvalid && code != conveyor.EUnauthorized {
		r.t.Fatalf("command %s to a task %s in %s: %v", body, before.Status, before.Node, err)
	}
	return code
}

// acceptable judges a body sent as is (a repeat) the way valid judges a
// structured one.
func (r *propRun) acceptable(node string, s snapshot, body string) bool {
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(body))
	d.UseNumber()
	if d.Decode(&m) != nil {
		return false
	}
	c := propCmd{Command: propText(m["command"]), OTP: propText(m["otp"]), RequestID: propText(m["request_id"])}
	if a, ok := m["amount"]; ok {
		raw, _ := json.Marshal(a)
		c.Amount = string(raw)
	}
	return r.flow.valid(node, s, c)
}

// step checks a resting task: its status against its node, hold_state
// against both, and that a finished task never moves again.
func (r *propRun) step(s snapshot) {
	r.t.Helper()
	hs := s.get("hold_state")
	if !slices.Contains(propNeutral, hs) {
		r.t.Fatalf("hold_state %q in %s is not one of the nine neutral states", hs, s.Node)
	}
	n := r.s.def.Node(s.Node)
	if n == nil {
		r.t.Fatalf("task in unknown node %q", s.Node)
	}
	where := fmt.Sprintf("task %s in %s (%s), hold_state %s, timer %q at %v", s.Status, s.Node, n.Kind, hs, s.Timer, s.TimerAt)
	switch s.Status {
	case store.StatusActive:
		if n.Kind != "api" || s.Timer != "retry" || s.TimerAt.IsZero() {
			r.t.Fatalf("%s: active at rest without a call to retry", where)
		}
	case store.StatusWaiting:
		if (n.Kind != "callback" && n.Kind != "delay") || s.TimerAt.IsZero() {
			r.t.Fatalf("%s: waiting without a timer", where)
		}
		allowed, ok := r.flow.pending[s.Node]
		if want, merchant := r.flow.merchant[s.Node]; merchant {
			allowed, ok = []string{want}, true
		}
		if !ok || !slices.Contains(allowed, hs) {
			r.t.Fatalf("%s: want one of %v", where, allowed)
		}
	case store.StatusEscalated:
		if n.Kind != "escalation" || s.Error == nil {
			r.t.Fatalf("%s: escalated outside an escalation node or without an error (%+v)", where, s.Error)
		}
		if propIsTerminal(hs) {
			r.t.Fatalf("%s: escalated with a terminal hold_state", where)
		}
	case store.StatusSucceeded, store.StatusFailed:
		want, ok := propTerminal[s.Node]
		if n.Kind != "final" || !ok || hs != want {
			r.t.Fatalf("%s: finished, want hold_state %s", where, want)
		}
		if ok := (s.Status == store.StatusSucceeded) == (hs == "CAPTURED" || hs == "RELEASED"); !ok {
			r.t.Fatalf("%s: result does not match the outcome", where)
		}
	default:
		r.t.Fatalf("%s: unexpected status", where)
	}
	if propIsTerminal(hs) != (s.Status == store.StatusSucceeded || s.Status == store.StatusFailed) {
		r.t.Fatalf("%s: hold_state and status disagree on whether it ended", where)
	}
	end := s.Node + " " + hs + " " + string(s.Status)
	switch {
	case r.final != "" && end != r.final:
		r.t.Fatalf("a finished task moved: was %s, now %s", r.final, end)
	case propIsTerminal(hs):
		r.final = end
	}
}

// outcomes checks the history: the task entered at most one final node,
// once.
func (r *propRun) outcomes() {
	r.t.Helper()
	var entered []string
	for _, h := range r.s.history(r.id) {
		if _, ok := propTerminal[h.To]; ok && h.From != h.To {
			entered = append(entered, h.To)
		}
	}
	if len(entered) > 1 {
		r.t.Fatalf("the task reached %d outcomes: %v", len(entered), entered)
	}
}

// rest checks the task brought to rest for good (invariant 3).
func (r *propRun) rest(s snapshot, lapse bool) {
	r.t.Helper()
	switch s.Status {
	case store.StatusSucceeded, store.StatusFailed, store.StatusEscalated:
	case store.StatusWaiting:
		if _, ok := r.flow.merchant[s.Node]; !ok || lapse || s.TimerAt.IsZero() {
			r.t.Fatalf("task stuck waiting in %s (timer %q at %v, lapse %v)", s.Node, s.Timer, s.TimerAt, lapse)
		}
	default:
		r.t.Fatalf("task stuck %s in %s (timer %q)", s.Status, s.Node, s.Timer)
	}
}

func propIsTerminal(hs string) bool {
	return hs == "CAPTURED" || hs == "RELEASED" || hs == "EXPIRED" || hs == "DECLINED"
}

// --- LiqPay ---

// propLiqPayHold is a generated LiqPay hold.
type propLiqPayHold struct {
	Cents    int64
	Amount   string
	Card     string
	Validity int           // hold_validity_hours
	LiqPay   time.Duration // the sandbox's HoldValidity; 0 is its default (30 days)
	Faults   []propFault   // installed before the hold is sent
}

func (h propLiqPayHold) input() map[string]any {
	return map[string]any{
		"phone": "380950000001", "amount": h.Amount, "currency": "UAH", "description": "deposit",
		"order_id": propRef, "card": h.Card, "card_exp_month": "12", "card_exp_year": "30", "card_cvv": "123",
		"ip": "203.0.113.7", "hold_validity_hours": json.Number(strconv.Itoa(h.Validity)),
	}
}

var propLiqPayCards = []string{
	liqpay.CardSuccess, liqpay.CardSuccess, liqpay.CardSuccess, liqpay.CardOTP, liqpay.CardOTP,
	liqpay.Card3DS, liqpay.CardCVV, liqpay.CardLimit, liqpay.CardInsufficient,
	"4111111111111111", // any other valid card: held at once
}

func propLiqPayHoldGen() *rapid.Generator[propLiqPayHold] {
	return rapid.Custom(func(t *rapid.T) propLiqPayHold {
		h := propLiqPayHold{
			Cents:    rapid.Int64Range(1, 2_000_000).Draw(t, "cents"),
			Card:     rapid.SampledFrom(propLiqPayCards).Draw(t, "card"),
			Validity: rapid.IntRange(1, 4).Draw(t, "hold_validity_hours"),
			LiqPay:   rapid.SampledFrom([]time.Duration{0, 0, 90 * time.Minute, 150 * time.Minute}).Draw(t, "liqpay_validity"),
		}
		h.Amount = propMoney(h.Cents)
		if h.Cents%100 == 0 && rapid.Bool().Draw(t, "whole") {
			h.Amount = strconv.FormatInt(h.Cents/100, 10)
		}
		h.Faults = rapid.SliceOfN(propFaultGen(propLiqPayKnobs, "hold", "hold", "status", "confirm"), 0, 2).Draw(t, "faults before the hold")
		return h
	})
}

// propLiqPayKnobs are the faults worth injecting per LiqPay action; "lose"
// loses the reply after the sandbox acted.
var propLiqPayKnobs = map[string][]string{
	"hold": {"lose", "http500", "pending=45s", "pending=5m", "pending", "drop_callback", "duplicate_callback",
		"delay_callback=15ms", propLate, "bad_signature_callback", "reorder_callbacks", "latency=5ms",
		"pending=45s,drop_callback", "pending=45s,duplicate_callback", "pending=45s,reorder_callbacks"},
	"confirm":         {"lose", "lose", "http500", "drop_callback", "duplicate_callback", propLate, "bad_signature_callback", "reorder_callbacks", "latency=5ms"},
	"hold_completion": {"lose", "lose", "http500", "drop_callback", "duplicate_callback", propLate, "bad_signature_callback", "latency=5ms"},
	"refund":          {"lose", "lose", "http500", "drop_callback", "duplicate_callback", propLate, "bad_signature_callback", "latency=5ms"},
	"status":          {"lose", "http500", "latency=5ms"},
}

// propFaultGen draws a fault for one of targets from knobs.
func propFaultGen(knobs map[string][]string, targets ...string) *rapid.Generator[propFault] {
	return rapid.Custom(func(t *rapid.T) propFault {
		f := propFault{
			target: rapid.SampledFrom(targets).Draw(t, "target"),
			times:  rapid.SampledFrom([]int{1, 1, 1, 2, 3, 5}).Draw(t, "times"),
		}
		if k := rapid.SampledFrom(knobs[f.target]).Draw(t, "knobs"); k == "lose" {
			f.lose = true
		} else {
			f.knobs = k
		}
		return f
	})
}

// propCommandFaults draws faults for the call a command causes (target;
// none for a command that causes none) and, maybe, for the status call
// that checks on it.
func propCommandFaults(t *rapid.T, knobs map[string][]string, target, status string) []propFault {
	var faults []propFault
	if target != "" {
		faults = append(faults, propFaultGen(knobs, target).Draw(t, "fault"))
	}
	if target == "" || rapid.Bool().Draw(t, "status fault") {
		faults = append(faults, propFaultGen(knobs, status).Draw(t, "status fault"))
	}
	return faults
}

func propLiqPayCmdGen(h propLiqPayHold) *rapid.Generator[propCmd] {
	return rapid.Custom(func(t *rapid.T) propCmd {
		c := propCmd{RequestID: rapid.SampledFrom([]string{"", "", "", "a", "b"}).Draw(t, "request_id")}
		kinds := []string{"capture", "capture", "capture", "cancel", "otp", "other"}
		if h.Card == liqpay.CardOTP || h.Card == liqpay.CardCVV || h.Card == liqpay.Card3DS {
			kinds = []string{"otp", "otp", "otp", "capture", "capture", "cancel", "other"} // the customer's codes first
		}
		switch rapid.SampledFrom(kinds).Draw(t, "command") {
		case "capture":
			c.Command = "capture"
			c.Amount = propLiqPayAmount(t, h.Cents)
		case "cancel":
			c.Command = "cancel"
			if rapid.IntRange(0, 5).Draw(t, "cancel amount") == 0 {
				c.Amount = `"1"`
			}
		case "otp":
			c.Command = "otp"
			c.OTP = rapid.SampledFrom([]string{"000000", liqpay.DefaultOTP, "654321", liqpay.DefaultOTP, "321", "12", ""}).Draw(t, "otp")
		default:
			c = propCmd{Raw: rapid.SampledFrom([]string{`{"command":"refund"}`, `{}`, `not json`, `{"command":"CAPTURE"}`, `{"command":7}`}).Draw(t, "body")}
		}
		return c
	})
}

// propLiqPayAmount draws a capture amount as JSON text: none (everything),
// the whole hold, part of it, more, zero, negative, too precise, not a
// number; as a string or a number.
func propLiqPayAmount(t *rapid.T, held int64) string {
	var cents int64
	switch rapid.SampledFrom([]string{"none", "none", "full", "part", "part", "above", "zero", "negative", "precise", "text"}).Draw(t, "amount") {
	case "none":
		return ""
	case "full":
		cents = held
	case "part":
		cents = rapid.Int64Range(1, max(held-1, 1)).Draw(t, "part")
	case "above":
		cents = held + rapid.SampledFrom([]int64{1, 100, held}).Draw(t, "excess")
	case "zero":
		cents = 0
	case "negative":
		cents = -100
	case "precise":
		return `"` + propMoney(max(held-1, 1)) + `5"`
	case "text":
		return `"ten"`
	}
	if rapid.Bool().Draw(t, "as number") {
		return propMoney(cents)
	}
	return `"` + propMoney(cents) + `"`
}

func propLiqPayActionGen(h propLiqPayHold) *rapid.Generator[propAction] {
	return rapid.Custom(func(t *rapid.T) propAction {
		switch k := rapid.SampledFrom([]string{"command", "command", "command", "faulty command", "faulty command", "race", "repeat",
			"fault", "fault", "fault", "advance", "advance", "timer", "timer", "await", "sweep", "restart", "crash"}).Draw(t, "kind"); k {
		case "command":
			return propAction{Kind: "command", Cmd: propLiqPayCmdGen(h).Draw(t, "cmd")}
		case "race":
			return propAction{Kind: "race", Cmd: propLiqPayCmdGen(h).Draw(t, "cmd"), Other: propLiqPayCmdGen(h).Draw(t, "other")}
		case "fault":
			return propAction{Kind: "fault", Fault: propFaultGen(propLiqPayKnobs, "hold_completion", "hold_completion",
				"refund", "refund", "status", "confirm", "hold").Draw(t, "fault")}
		case "faulty command":
			// A command with faults for the calls it causes.
			c := propLiqPayCmdGen(h).Draw(t, "cmd")
			target := map[string]string{"capture": "hold_completion", "cancel": "refund", "otp": "confirm"}[c.Command]
			return propAction{Kind: "command", Cmd: c, Faults: propCommandFaults(t, propLiqPayKnobs, target, "status")}
		case "advance":
			return propAction{Kind: "advance", D: rapid.SampledFrom([]time.Duration{
				time.Second, 5 * time.Second, 30 * time.Second, 61 * time.Second, 2 * time.Minute, 10 * time.Minute,
				time.Hour, 3 * time.Hour, 8 * time.Hour, 31 * 24 * time.Hour}).Draw(t, "by")}
		default:
			return propAction{Kind: k}
		}
	})
}

var (
	propOTPCode = regexp.MustCompile(`^[0-9]{4,8}$`)
	propCVVCode = regexp.MustCompile(`^[0-9]{3,4}$`)
	propAnyCode = regexp.MustCompile(`^[0-9]{3,8}$`)
	propDecimal = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)
)

// propLiqPayFlow describes liqpay-hold-lifecycle for the checks.
func propLiqPayFlow(held int64) propFlow {
	return propFlow{
		merchant: map[string]string{"wait_command": "HELD", "wait_code": "ACTION_REQUIRED"},
		pending:  map[string][]string{"wait_provider": {"AUTH_PENDING"}},
		valid: func(node string, s snapshot, c propCmd) bool {
			switch node {
			case "wait_command":
				switch c.Command {
				case "cancel":
					return c.Amount == "" || propDecimalAmount(c.Amount) != nil
				case "capture":
					if c.Amount == "" {
						return true
					}
					cents := propDecimalAmount(c.Amount)
					return cents != nil && *cents > 0 && *cents <= held
				}
			case "wait_code":
				if c.Command != "otp" || c.Amount != "" {
					return false
				}
				action := s.get("required_action")
				if c.OTP == "" {
					return action == "3ds_verify"
				}
				switch action {
				case "3ds_verify":
					return propAnyCode.MatchString(c.OTP)
				case "cvv_verify":
					return propCVVCode.MatchString(c.OTP)
				}
				return propOTPCode.MatchString(c.OTP)
			}
			return false
		},
	}
}

// propDecimalAmount reads a decimal amount given as a JSON string or
// number, in cents; nil when it is not one with at most two decimals.
func propDecimalAmount(text string) *int64 {
	text = strings.Trim(text, `"`)
	if !propDecimal.MatchString(text) {
		return nil
	}
	cents, ok := propCents(text)
	if !ok {
		return nil
	}
	return &cents
}

func propLiqPayCase(t *rapid.T, l *processes.Loader, defs []*processes.Definition) {
	h := propLiqPayHoldGen().Draw(t, "hold")
	s := propLiqPay(t, l, defs, liqpay.Config{HoldValidity: h.LiqPay})
	defer s.close()
	for _, f := range h.Faults {
		s.proxy.add(f)
	}
	if rapid.IntRange(0, 5).Draw(t, "crash on the first call") == 0 {
		s.proxy.armStall()
	}
	r := newPropRun(t, s, propLiqPayFlow(h.Cents), s.submit(propRef, h.input()))
	r.step(s.settle(r.id))
	if rapid.IntRange(0, 3).Draw(t, "await first") > 0 {
		r.do(propAction{Kind: "await"})
	}
	steps := rapid.SliceOfN(propLiqPayActionGen(h), 0, 12).Draw(t, "steps")
	for _, a := range steps {
		r.do(a)
	}
	lapse := rapid.Bool().Draw(t, "lapse")
	s.final = true
	final := s.drive(r.id, lapse, "wait_command", "wait_code")
	s.proxy.disarm()
	r.step(final)
	r.rest(final, lapse)
	r.outcomes()
	t.Logf("rest: %s in %s, hold_state %s, last_error %s; LiqPay calls %s", final.Status, final.Node,
		final.get("hold_state"), final.get("last_error"), propLiqPayCounts(s.liqpay.Calls()))
	propLiqPayProvider(t, s, h, final, r.codes)
}

// propLiqPayProvider checks the task's outcome against the LiqPay
// sandbox's record of calls and its payment (invariants 1, 2 and 4).
func propLiqPayProvider(t *rapid.T, s *propSys, h propLiqPayHold, task snapshot, codes int) {
	t.Helper()
	calls := s.liqpay.Calls()
	// 4: LiqPay's confirm has no idempotency key, and each one with a wrong
	// code spends one of the customer's attempts: it is sent once per code
	// the customer gave (a crash while it was under way may send it again,
	// which no flow can avoid).
	confirmed := 0
	for _, c := range calls {
		if c.Action == "confirm" && c.HTTPStatus == 200 && c.ErrCode != "payment_err_status" && c.ErrCode != "payment_not_found" {
			confirmed++
		}
	}
	if confirmed > codes+s.crashes["confirm"] {
		t.Fatalf("LiqPay carried out %d confirms for %d codes (%d crashes during one): %s",
			confirmed, codes, s.crashes["confirm"], propLiqPayCounts(calls))
	}
	// 4: one order_id, every hold the same request, one payment.
	made := 0
	for _, c := range calls {
		if c.Action != "confirm" && c.OrderID != propRef {
			t.Fatalf("%s named order_id %q, want %q", c.Action, c.OrderID, propRef)
		}
		if c.Action == "hold" && c.HTTPStatus == 200 && c.ErrCode != "order_id_duplicate" && c.ErrCode != "err_card" {
			made++
		}
	}
	if made > 1 {
		t.Fatalf("%d holds made a payment at LiqPay, want at most 1", made)
	}
	holds := s.proxy.requests("hold")
	for i, rq := range holds {
		if !propSameParams(rq.Params, holds[0].Params) {
			t.Fatalf("hold %d differs from the first: %v vs %v", i+1, rq.Params, holds[0].Params)
		}
	}
	// 1: no completion asked for more than the hold, and every one that
	// succeeded is the same capture replayed.
	var completions []liqpay.Call
	for _, c := range calls {
		if c.Action == "hold_completion" {
			completions = append(completions, c)
		}
	}
	asked := s.proxy.requests("hold_completion")
	if len(asked) != len(completions) {
		t.Fatalf("%d hold_completion requests sent, LiqPay saw %d", len(asked), len(completions))
	}
	var captured *int64
	for i, rq := range asked {
		cents, ok := propCents(propText(rq.Params["amount"]))
		if !ok || cents <= 0 || cents > h.Cents {
			t.Fatalf("hold_completion asked for %v of a hold of %s", rq.Params["amount"], h.Amount)
		}
		if completions[i].Status != "success" {
			continue
		}
		if captured != nil && *captured != cents {
			t.Fatalf("LiqPay completed the hold twice: %d and %d cents", *captured, cents)
		}
		captured = &cents
	}

	// 2: the payment as LiqPay has it now agrees with the task.
	obj, found := s.liqpayStatus(propRef)
	status, errCode := propText(obj["status"]), propText(obj["err_code"])
	debit, taken := propCents(propText(obj["amount_debit"]))
	hs := task.get("hold_state")
	where := fmt.Sprintf("task %s in %s with hold_state %s (captured %s, released %s, last_error %s); LiqPay: found %v, status %s, err_code %s, amount_debit %v; calls %s",
		task.Status, task.Node, hs, task.get("captured_amount"), task.get("released_amount"), task.get("last_error"),
		found, status, errCode, obj["amount_debit"], propLiqPayCounts(calls))
	if _, refunded := obj["refund_amount"]; refunded {
		t.Fatalf("LiqPay refunded a completed payment: %s", where)
	}
	if taken && (captured == nil || *captured != debit || debit > h.Cents) {
		t.Fatalf("LiqPay took %d cents, the successful completions asked %v: %s", debit, captured, where)
	}
	escalated := task.Status == store.StatusEscalated
	switch hs {
	case "CAPTURED":
		got, ok := propCents(task.get("captured_amount"))
		rest, ok2 := propCents(task.get("released_amount"))
		if !found || status != "success" || !taken || !ok || !ok2 || got != debit || got+rest != h.Cents {
			t.Fatalf("CAPTURED does not match LiqPay: %s", where)
		}
	case "RELEASED", "EXPIRED":
		if !found || status != "reversed" || taken {
			t.Fatalf("%s does not match LiqPay: %s", hs, where)
		}
	case "DECLINED":
		if found && !slices.Contains([]string{"failure", "error", "otp_verify", "3ds_verify", "cvv_verify"}, status) {
			t.Fatalf("DECLINED while LiqPay holds or took the funds: %s", where)
		}
	case "HELD":
		if !escalated && (!found || !(status == "hold_wait" || status == "reversed" && errCode == "expired")) {
			t.Fatalf("HELD does not match LiqPay: %s", where)
		}
	case "ACTION_REQUIRED":
		if !escalated && (!found || !strings.HasSuffix(status, "_verify")) {
			t.Fatalf("ACTION_REQUIRED does not match LiqPay: %s", where)
		}
	}
	// The other way round: funds LiqPay holds or took have a task that says
	// so, or an operator looking.
	switch {
	case escalated:
	case status == "success" && hs != "CAPTURED",
		status == "hold_wait" && hs != "HELD",
		status == "processing",
		status == "reversed" && hs != "RELEASED" && hs != "EXPIRED" && !(hs == "HELD" && errCode == "expired"):
		t.Fatalf("LiqPay's payment and the task disagree: %s", where)
	}
}

// propSameParams compares two LiqPay requests without their fault knobs.
func propSameParams(a, b map[string]any) bool {
	strip := func(m map[string]any) string {
		c := map[string]any{}
		for k, v := range m {
			if k != "sandbox_fault" {
				c[k] = v
			}
		}
		raw, _ := json.Marshal(c)
		return string(raw)
	}
	return strip(a) == strip(b)
}

func propLiqPayCounts(calls []liqpay.Call) string {
	var parts []string
	for _, c := range calls {
		p := c.Action + ":" + strconv.Itoa(c.HTTPStatus) + ":" + c.Status
		if c.ErrCode != "" {
			p += "/" + c.ErrCode
		}
		if c.Faults != "" {
			p += "[" + c.Faults + "]"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

// --- VIA ---

// propVIAHold is a generated VIA hold.
type propVIAHold struct {
	Amount   int64
	Card     string
	HoldTime int           // minutes
	Pending  time.Duration // the sandbox's PendingFor
	Faults   []propFault
}

func (h propVIAHold) input() map[string]any {
	return map[string]any{
		"merchantId": via.DefaultMerchantID, "cardToken": h.Card, "amount": json.Number(strconv.FormatInt(h.Amount, 10)),
		"currency": "UZS", "note": "deposit", "accounts": map[string]any{"account": "123123"},
		"holdTime": json.Number(strconv.Itoa(h.HoldTime)),
	}
}

var propVIACards = []string{via.CardSuccess, via.CardSuccess, via.CardSuccess, via.CardSuccess, via.CardSuccess,
	via.CardSuccess, via.CardSuccess, via.CardInsufficientFunds, via.CardPending, "VLH8VNWKE3SBBBZEKA86T5PF7UNKNOWN"}

func propVIAHoldGen() *rapid.Generator[propVIAHold] {
	return rapid.Custom(func(t *rapid.T) propVIAHold {
		return propVIAHold{
			Amount:   rapid.Int64Range(1, 10_000_000).Draw(t, "amount"),
			Card:     rapid.SampledFrom(propVIACards).Draw(t, "card"),
			HoldTime: rapid.IntRange(5, 60).Draw(t, "holdTime"),
			Pending:  rapid.SampledFrom([]time.Duration{0, 0, 3 * time.Second, 10 * time.Second, 2 * time.Minute}).Draw(t, "pending_for"),
			Faults:   rapid.SliceOfN(propFaultGen(propVIAKnobs, "create", "create", "info"), 0, 2).Draw(t, "faults before the hold"),
		}
	})
}

// propVIAKnobs are the faults worth injecting per VIA endpoint; "lose"
// loses the reply after the sandbox acted.
var propVIAKnobs = map[string][]string{
	"create":  {"lose", "lose", "http500", "pending=30s", "pending", "create_error", "latency=5ms"},
	"confirm": {"lose", "lose", "http500", "pending=30s", "pending", "confirm_error", "confirm_error", "latency=5ms"},
	"cancel":  {"lose", "lose", "http500", "pending=30s", "pending", "cancel_error", "cancel_error", "latency=5ms"},
	"info":    {"lose", "http500", "latency=5ms"},
}

func propVIACmdGen(h propVIAHold) *rapid.Generator[propCmd] {
	return rapid.Custom(func(t *rapid.T) propCmd {
		c := propCmd{RequestID: rapid.SampledFrom([]string{"", "", "", "a", "b"}).Draw(t, "request_id")}
		switch rapid.SampledFrom([]string{"capture", "capture", "capture", "cancel", "cancel", "other"}).Draw(t, "command") {
		case "capture":
			c.Command = "capture"
			switch rapid.SampledFrom([]string{"none", "none", "full", "part", "part", "above", "zero", "negative", "fraction", "string"}).Draw(t, "amount") {
			case "full":
				c.Amount = strconv.FormatInt(h.Amount, 10)
			case "part":
				c.Amount = strconv.FormatInt(rapid.Int64Range(1, max(h.Amount-1, 1)).Draw(t, "part"), 10)
			case "above":
				c.Amount = strconv.FormatInt(h.Amount+rapid.SampledFrom([]int64{1, 100, h.Amount}).Draw(t, "excess"), 10)
			case "zero":
				c.Amount = "0"
			case "negative":
				c.Amount = "-1"
			case "fraction":
				c.Amount = "99.5"
			case "string":
				c.Amount = `"` + strconv.FormatInt(h.Amount, 10) + `"`
			}
		case "cancel":
			c.Command = "cancel"
			if rapid.IntRange(0, 5).Draw(t, "cancel amount") == 0 {
				c.Amount = "100"
			}
		default:
			c = propCmd{Raw: rapid.SampledFrom([]string{`{"command":"refund"}`, `{}`, `not json`, `{"command":"CAPTURE"}`,
				`{"cmd":"capture"}`, `{"command":"otp","otp":"123456"}`}).Draw(t, "body")}
		}
		return c
	})
}

func propVIAActionGen(h propVIAHold) *rapid.Generator[propAction] {
	return rapid.Custom(func(t *rapid.T) propAction {
		switch k := rapid.SampledFrom([]string{"command", "command", "command", "faulty command", "faulty command", "race", "repeat",
			"fault", "fault", "fault", "advance", "advance", "timer", "timer", "await", "restart", "crash"}).Draw(t, "kind"); k {
		case "command":
			return propAction{Kind: "command", Cmd: propVIACmdGen(h).Draw(t, "cmd")}
		case "race":
			return propAction{Kind: "race", Cmd: propVIACmdGen(h).Draw(t, "cmd"), Other: propVIACmdGen(h).Draw(t, "other")}
		case "fault":
			return propAction{Kind: "fault", Fault: propFaultGen(propVIAKnobs, "confirm", "confirm", "cancel", "cancel", "info", "create").Draw(t, "fault")}
		case "faulty command":
			// A command with faults for the calls it causes.
			c := propVIACmdGen(h).Draw(t, "cmd")
			target := map[string]string{"capture": "confirm", "cancel": "cancel"}[c.Command]
			return propAction{Kind: "command", Cmd: c, Faults: propCommandFaults(t, propVIAKnobs, target, "info")}
		case "advance":
			return propAction{Kind: "advance", D: rapid.SampledFrom([]time.Duration{
				time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute,
				30 * time.Minute, time.Hour, 25 * time.Hour}).Draw(t, "by")}
		default:
			return propAction{Kind: k}
		}
	})
}

// propVIAFlow describes via-hold-lifecycle for the checks.
func propVIAFlow(held int64) propFlow {
	pending := []string{"AUTH_PENDING", "CAPTURE_PENDING", "CANCEL_PENDING"}
	return propFlow{
		merchant: map[string]string{"wait_command": "HELD"},
		pending:  map[string][]string{"wait_5s": pending, "wait_30s": pending, "wait_5m": pending},
		valid: func(node string, _ snapshot, c propCmd) bool {
			if node != "wait_command" {
				return false
			}
			switch c.Command {
			case "cancel":
				return c.Amount == ""
			case "capture":
				if c.Amount == "" {
					return true
				}
				n, err := strconv.ParseInt(c.Amount, 10, 64)
				return err == nil && n > 0 && n <= held
			}
			return false
		},
	}
}

func propVIACase(t *rapid.T, l *processes.Loader, defs []*processes.Definition) {
	h := propVIAHoldGen().Draw(t, "hold")
	s := propVIA(t, l, defs, via.Config{PendingFor: h.Pending})
	defer s.close()
	for _, f := range h.Faults {
		s.proxy.add(f)
	}
	if rapid.IntRange(0, 5).Draw(t, "crash on the first call") == 0 {
		s.proxy.armStall()
	}
	r := newPropRun(t, s, propVIAFlow(h.Amount), s.submit(propRef, h.input()))
	r.step(s.settle(r.id))
	if rapid.IntRange(0, 3).Draw(t, "await first") > 0 {
		r.do(propAction{Kind: "await"})
	}
	steps := rapid.SliceOfN(propVIAActionGen(h), 0, 12).Draw(t, "steps")
	for _, a := range steps {
		r.do(a)
	}
	lapse := rapid.Bool().Draw(t, "lapse")
	s.final = true
	final := s.drive(r.id, lapse, "wait_command")
	s.proxy.disarm()
	r.step(final)
	r.rest(final, lapse)
	r.outcomes()
	t.Logf("rest: %s in %s, hold_state %s, last_error %s; VIA calls %s", final.Status, final.Node,
		final.get("hold_state"), final.get("last_error"), propVIACounts(s.via.Calls()))
	propVIAProvider(t, s, h, final)
}

// propVIAProvider checks the task's outcome against the VIA sandbox's
// record of calls and its hold (invariants 1, 2 and 4).
func propVIAProvider(t *rapid.T, s *propSys, h propVIAHold, task snapshot) {
	t.Helper()
	calls := s.via.Calls()
	// 4: one hold, every create the same request with our externalId, no
	// confirm or cancel carried out twice.
	ids := map[string]bool{}
	var captures, cancels []via.Call
	for _, c := range calls {
		if c.HoldID != "" {
			ids[c.HoldID] = true
		}
		if c.ExternalID != "" && c.ExternalID != propRef {
			t.Fatalf("%s named externalId %q, want %q", c.Path, c.ExternalID, propRef)
		}
		took := c.HTTPStatus == 200 && !c.Replay
		switch {
		case c.Path == via.PathConfirm && took && !strings.Contains(c.Faults, "confirm_error"):
			captures = append(captures, c)
		case c.Path == via.PathCancel && took && !strings.Contains(c.Faults, "cancel_error"):
			cancels = append(cancels, c)
		}
	}
	if len(ids) > 1 {
		t.Fatalf("calls named %d holds, want 1: %v", len(ids), ids)
	}
	holdID := ""
	for id := range ids {
		holdID = id
	}
	if got := task.get("hold_id"); got != "" && got != holdID {
		t.Fatalf("task's hold_id %s, VIA's %s", got, holdID)
	}
	creates := s.proxy.requests("create")
	for i, rq := range creates {
		if rq.Raw != creates[0].Raw || propText(rq.Params["externalId"]) != propRef {
			t.Fatalf("create %d sent %s, the first %s", i+1, rq.Raw, creates[0].Raw)
		}
	}
	if len(captures)+len(cancels) > 1 {
		t.Fatalf("VIA carried out %d confirms and %d cancels, want one at most: %s", len(captures), len(cancels), propVIACounts(calls))
	}
	// 1: nothing asked above the hold.
	for _, rq := range s.proxy.requests("confirm") {
		n, err := strconv.ParseInt(propText(rq.Params["amount"]), 10, 64)
		if err != nil || n <= 0 || n > h.Amount {
			t.Fatalf("confirm asked for %v of a hold of %d", rq.Params["amount"], h.Amount)
		}
	}

	// 2: the hold as VIA has it now agrees with the task.
	status, confirmed := "", int64(0)
	if holdID != "" {
		info := s.viaInfo(holdID)
		status = propText(info["status"])
		confirmed, _ = strconv.ParseInt(propText(info["confirmedAmount"]), 10, 64)
	}
	hs := task.get("hold_state")
	where := fmt.Sprintf("task %s in %s with hold_state %s (captured %s, released %s, last_error %s); VIA: hold %q, status %s, confirmed %d; calls %s",
		task.Status, task.Node, hs, task.get("captured_amount"), task.get("released_amount"), task.get("last_error"),
		holdID, status, confirmed, propVIACounts(calls))
	if confirmed > h.Amount || (confirmed > 0) != (status == via.StatusConfirmSuccess) {
		t.Fatalf("VIA confirmed %d of %d: %s", confirmed, h.Amount, where)
	}
	escalated := task.Status == store.StatusEscalated
	switch hs {
	case "CAPTURED":
		got, err1 := strconv.ParseInt(task.get("captured_amount"), 10, 64)
		rest, err2 := strconv.ParseInt(task.get("released_amount"), 10, 64)
		if status != via.StatusConfirmSuccess || err1 != nil || err2 != nil || got != confirmed || got+rest != h.Amount {
			t.Fatalf("CAPTURED does not match VIA: %s", where)
		}
	case "RELEASED":
		if status != via.StatusCancelSuccess {
			t.Fatalf("RELEASED does not match VIA: %s", where)
		}
	case "EXPIRED":
		if status != via.StatusExpired {
			t.Fatalf("EXPIRED does not match VIA: %s", where)
		}
	case "DECLINED":
		if status != "" && status != via.StatusCreateError {
			t.Fatalf("DECLINED while VIA holds or took the funds: %s", where)
		}
	case "HELD":
		capturable := status == via.StatusCreateSuccess || status == via.StatusConfirmError || status == via.StatusCancelError
		if !escalated && !capturable && status != via.StatusExpired {
			t.Fatalf("HELD does not match VIA: %s", where)
		}
	}
	switch {
	case escalated:
	case status == via.StatusConfirmSuccess && hs != "CAPTURED",
		status == via.StatusCancelSuccess && hs != "RELEASED",
		status == via.StatusExpired && hs != "EXPIRED" && hs != "HELD",
		status == via.StatusCreateError && hs != "DECLINED",
		slices.Contains([]string{via.StatusCreateSuccess, via.StatusConfirmError, via.StatusCancelError}, status) && hs != "HELD",
		slices.Contains([]string{via.StatusNew, via.StatusCreatePending, via.StatusConfirmPending, via.StatusCancelPending}, status),
		status == "" && hs != "DECLINED":
		t.Fatalf("VIA's hold and the task disagree: %s", where)
	}
}

func propVIACounts(calls []via.Call) string {
	var parts []string
	for _, c := range calls {
		p := strings.TrimPrefix(c.Path, "/partner/hold/") + ":" + strconv.Itoa(c.HTTPStatus) + ":" + c.Status
		if c.ErrCode != "" {
			p += "/" + c.ErrCode
		}
		if c.Amount != 0 && c.Path == via.PathConfirm {
			p += "(" + strconv.FormatInt(c.Amount, 10) + ")"
		}
		if c.Replay {
			p += "(replay)"
		}
		if c.Faults != "" {
			p += "[" + c.Faults + "]"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}
