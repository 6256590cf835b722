package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestDemo_Run(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"demo"}, &out, &errb); code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	got := out.String()
	for _, want := range []string{
		"check_status -> held", // the first hold goes through, node by node
		"424242******4242",     // with the card masked
		"err_code=limit",       // the declined one escalates with the provider's code
		"operator_edit",        // and the operator's edit-then-retry is recorded
		"Done:",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("demo output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "4242424242424242") || strings.Contains(got, "4000000000000002") {
		t.Errorf("demo output shows a card number in clear:\n%s", got)
	}
}
