package engine

import (
	"encoding/base64"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestNewToken(t *testing.T) {
	t.Parallel()
	t.Run("carries_160_random_bits_after_the_task's_creation_time", func(t *testing.T) {
		t.Parallel()
		seen := map[string]bool{}
		randoms := map[string]bool{}
		for range 1000 {
			id := uuid.Must(uuid.NewV7())
			tok := newToken(id)
			if len(tok) != 12+27 {
				t.Fatalf("token %q has %d characters, want 39", tok, len(tok))
			}
			if tok[:12] != hex.EncodeToString(id[:6]) {
				t.Fatalf("token %q does not start with the time of task %s", tok, id)
			}
			r, err := base64.RawURLEncoding.DecodeString(tok[12:])
			if err != nil || len(r) != 20 {
				t.Fatalf("token %q: random part decodes to %d bytes (%v), want 20", tok, len(r), err)
			}
			if seen[tok] || randoms[tok[12:]] {
				t.Fatalf("token %q drawn twice", tok)
			}
			seen[tok], randoms[tok[12:]] = true, true
		}
	})
	t.Run("sorts_in_creation_order", func(t *testing.T) {
		t.Parallel()
		var toks []string
		for range 5 {
			toks = append(toks, newToken(uuid.Must(uuid.NewV7())))
			time.Sleep(2 * time.Millisecond)
		}
		if !slices.IsSorted(toks) {
			t.Errorf("tokens of tasks created one after another are not sorted: %q", toks)
		}
	})
}
