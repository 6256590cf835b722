package via

import (
	"fmt"
	"strings"
	"time"
)

// Faults are the sandbox's fault knobs. A Server applies Config.Faults to
// every request and, per request, the knobs named in the JSON body's
// sandbox_fault field and in the X-Sandbox-Fault header (see ParseFaults).
// The zero value injects nothing.
type Faults struct {
	// Latency holds the reply back this long after the request took effect,
	// or until the client gives up; the effect stands either way.
	Latency time.Duration
	// HTTP500 answers 500 INTERNAL_ERROR and changes nothing.
	HTTP500 bool
	// Timeout never answers: the handler waits until the client gives up
	// (or the Server closes) and changes nothing.
	Timeout bool
	// Pending makes the operation the request starts (create, confirm or
	// cancel) stop in its pending status: CREATE_PENDING, CONFIRM_PENDING
	// or CANCEL_PENDING, for ever.
	Pending bool
	// PendingFor, with Pending, replaces Config.PendingFor for the
	// operation the request starts, so it resolves after all. Zero keeps
	// it pending for ever.
	PendingFor time.Duration
	// CreateError makes a create end CREATE_ERROR whatever the card.
	CreateError bool
	// ConfirmError makes a confirm end CONFIRM_ERROR: nothing is captured
	// and the hold stays capturable (holds.md §5.1).
	ConfirmError bool
	// CancelError makes a cancel end CANCEL_ERROR: nothing is released and
	// the hold stays capturable (holds.md §5.1).
	CancelError bool
	// DropWebhook records webhooks but never sends them.
	DropWebhook bool
	// DuplicateWebhook sends every webhook twice, back to back.
	DuplicateWebhook bool
	// DelayWebhook waits this long (real time) before sending a webhook.
	DelayWebhook time.Duration
	// ReorderWebhooks holds back each webhook of an intermediate status
	// until the hold's next webhook has been sent, so the receiver sees the
	// later status first.
	ReorderWebhooks bool
}

// ParseFaults parses the knob syntax of sandbox_fault and X-Sandbox-Fault:
// comma-separated knobs, each a bare name or name=duration (Go duration
// syntax), e.g. "latency=200ms,duplicate_webhook,pending=2s". Knobs:
// latency=D, http500, timeout, pending[=D], create_error, confirm_error,
// cancel_error, drop_webhook, duplicate_webhook, delay_webhook=D,
// reorder_webhooks. An empty string gives the zero Faults; an unknown knob
// or a bad duration is an error.
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
		"http500":           &f.HTTP500,
		"timeout":           &f.Timeout,
		"create_error":      &f.CreateError,
		"confirm_error":     &f.ConfirmError,
		"cancel_error":      &f.CancelError,
		"drop_webhook":      &f.DropWebhook,
		"duplicate_webhook": &f.DuplicateWebhook,
		"reorder_webhooks":  &f.ReorderWebhooks,
	}
	durations := map[string]*time.Duration{
		"latency":       &f.Latency,
		"delay_webhook": &f.DelayWebhook,
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
		return fmt.Errorf("via: unknown sandbox fault knob %q", name)
	}
	return nil
}

// parseKnobDuration parses the positive duration of knob name into dst.
func parseKnobDuration(name, value string, dst *time.Duration) error {
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		return fmt.Errorf("via: sandbox fault knob %s needs a positive duration, got %q", name, value)
	}
	*dst = d
	return nil
}

// merge returns f with the knobs of g added; g's durations win where set.
func (f Faults) merge(g Faults) Faults {
	f.HTTP500 = f.HTTP500 || g.HTTP500
	f.Timeout = f.Timeout || g.Timeout
	f.Pending = f.Pending || g.Pending
	f.CreateError = f.CreateError || g.CreateError
	f.ConfirmError = f.ConfirmError || g.ConfirmError
	f.CancelError = f.CancelError || g.CancelError
	f.DropWebhook = f.DropWebhook || g.DropWebhook
	f.DuplicateWebhook = f.DuplicateWebhook || g.DuplicateWebhook
	f.ReorderWebhooks = f.ReorderWebhooks || g.ReorderWebhooks
	f.Latency = override(f.Latency, g.Latency)
	f.PendingFor = override(f.PendingFor, g.PendingFor)
	f.DelayWebhook = override(f.DelayWebhook, g.DelayWebhook)
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
	var knobs []string
	add := func(on bool, knob string) {
		if on {
			knobs = append(knobs, knob)
		}
	}
	add(f.Latency > 0, "latency="+f.Latency.String())
	add(f.HTTP500, "http500")
	add(f.Timeout, "timeout")
	add(f.Pending && f.PendingFor == 0, "pending")
	add(f.Pending && f.PendingFor > 0, "pending="+f.PendingFor.String())
	add(f.CreateError, "create_error")
	add(f.ConfirmError, "confirm_error")
	add(f.CancelError, "cancel_error")
	add(f.DropWebhook, "drop_webhook")
	add(f.DuplicateWebhook, "duplicate_webhook")
	add(f.DelayWebhook > 0, "delay_webhook="+f.DelayWebhook.String())
	add(f.ReorderWebhooks, "reorder_webhooks")
	return strings.Join(knobs, ",")
}
