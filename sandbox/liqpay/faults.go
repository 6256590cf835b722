package liqpay

import (
	"fmt"
	"strings"
	"time"
)

// Faults are the sandbox's fault knobs. A Server applies Config.Faults to
// everything and, per request, the knobs named in the request's
// sandbox_fault field (see ParseFaults). The zero value injects nothing.
type Faults struct {
	// Latency holds the reply back this long after the request took effect,
	// or until the client gives up; the effect stands either way.
	Latency time.Duration
	// HTTP500 answers 500 with a JSON error body and changes nothing.
	HTTP500 bool
	// Timeout never answers: the handler waits until the client gives up
	// (or the Server closes) and changes nothing.
	Timeout bool
	// DropCallback records the payment's callbacks but never sends them.
	DropCallback bool
	// DuplicateCallback sends every callback twice, back to back.
	DuplicateCallback bool
	// DelayCallback waits this long (real time) before sending a callback;
	// it overrides Config.CallbackDelay.
	DelayCallback time.Duration
	// BadSignatureCallback signs callbacks with the wrong key.
	BadSignatureCallback bool
	// Pending makes a hold answer status "processing" whatever the card.
	Pending bool
	// PendingFor, with Pending, resolves a processing hold to the card's
	// real outcome once this much sandbox-clock time has passed since
	// create_date. Zero keeps it processing for ever.
	PendingFor time.Duration
	// ReorderCallbacks holds back each callback of an intermediate status
	// until the payment's next callback has been sent, so the receiver sees
	// the later status first.
	ReorderCallbacks bool
}

// ParseFaults parses the sandbox_fault syntax: comma-separated knobs, each a
// bare name or name=duration (Go duration syntax), e.g.
// "latency=200ms,duplicate_callback,pending=2s". Knobs: latency=D, http500,
// timeout, drop_callback, duplicate_callback, delay_callback=D,
// bad_signature_callback, pending[=D], reorder_callbacks. An empty string
// gives the zero Faults; an unknown knob or bad duration is an error.
func ParseFaults(s string) (Faults, error) {
	var f Faults
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, value, hasValue := strings.Cut(item, "=")
		if err := f.set(strings.TrimSpace(name), strings.TrimSpace(value), hasValue); err != nil {
			return Faults{}, err
		}
	}
	return f, nil
}

// set turns on one knob.
func (f *Faults) set(name, value string, hasValue bool) error {
	flags := map[string]*bool{
		"http500":                &f.HTTP500,
		"timeout":                &f.Timeout,
		"drop_callback":          &f.DropCallback,
		"duplicate_callback":     &f.DuplicateCallback,
		"bad_signature_callback": &f.BadSignatureCallback,
		"reorder_callbacks":      &f.ReorderCallbacks,
	}
	durations := map[string]*time.Duration{
		"latency":        &f.Latency,
		"delay_callback": &f.DelayCallback,
	}
	switch {
	case flags[name] != nil && !hasValue:
		*flags[name] = true
	case durations[name] != nil && hasValue:
		return parseKnobDuration(name, value, durations[name])
	case name == "pending":
		f.Pending = true
		if hasValue {
			return parseKnobDuration(name, value, &f.PendingFor)
		}
	default:
		return fmt.Errorf("liqpay: unknown sandbox_fault knob %q", name)
	}
	return nil
}

// parseKnobDuration parses the positive duration of knob name into dst.
func parseKnobDuration(name, value string, dst *time.Duration) error {
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		return fmt.Errorf("liqpay: sandbox_fault knob %s needs a positive duration, got %q", name, value)
	}
	*dst = d
	return nil
}

// merge returns f with the knobs of g added; g's durations win where set.
func (f Faults) merge(g Faults) Faults {
	f.HTTP500 = f.HTTP500 || g.HTTP500
	f.Timeout = f.Timeout || g.Timeout
	f.DropCallback = f.DropCallback || g.DropCallback
	f.DuplicateCallback = f.DuplicateCallback || g.DuplicateCallback
	f.BadSignatureCallback = f.BadSignatureCallback || g.BadSignatureCallback
	f.ReorderCallbacks = f.ReorderCallbacks || g.ReorderCallbacks
	f.Pending = f.Pending || g.Pending
	f.Latency = override(f.Latency, g.Latency)
	f.DelayCallback = override(f.DelayCallback, g.DelayCallback)
	f.PendingFor = override(f.PendingFor, g.PendingFor)
	return f
}

// override returns b when it is set, a otherwise.
func override(a, b time.Duration) time.Duration {
	if b > 0 {
		return b
	}
	return a
}

// String renders f in ParseFaults syntax, for logs and Call records.
func (f Faults) String() string {
	if f == (Faults{}) {
		return "" // the common case, without formatting the durations below
	}
	var knobs []string
	add := func(on bool, knob string) {
		if on {
			knobs = append(knobs, knob)
		}
	}
	add(f.Latency > 0, "latency="+f.Latency.String())
	add(f.HTTP500, "http500")
	add(f.Timeout, "timeout")
	add(f.DropCallback, "drop_callback")
	add(f.DuplicateCallback, "duplicate_callback")
	add(f.DelayCallback > 0, "delay_callback="+f.DelayCallback.String())
	add(f.BadSignatureCallback, "bad_signature_callback")
	add(f.Pending && f.PendingFor == 0, "pending")
	add(f.Pending && f.PendingFor > 0, "pending="+f.PendingFor.String())
	add(f.ReorderCallbacks, "reorder_callbacks")
	return strings.Join(knobs, ",")
}
