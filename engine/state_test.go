package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/store"
)

// TestState_dataDecodedOnFirstUse: a state made for a timeout leaves the
// stored data encoded until something reads it. Clearing an error field
// the bytes never mention keeps it so (the commit then writes the stored
// bytes back); one they do mention, or any read or write, decodes it.
func TestState_dataDecodedOnFirstUse(t *testing.T) {
	t.Run("a field the bytes do not mention", func(t *testing.T) {
		s := &state{raw: []byte(`{"amount":"10.00","note":"err_codes are elsewhere"}`)}
		s.deleteField("err_code")
		if s.data != nil || s.changed {
			t.Fatalf("deleting an absent field decoded the data (%v) or changed it (%v)", s.data, s.changed)
		}
	})
	t.Run("a field the bytes hold", func(t *testing.T) {
		s := &state{raw: []byte(`{"amount":"10.00","err_code":"timeout"}`)}
		s.deleteField("err_code")
		if _, ok := s.data["err_code"]; ok || s.data["amount"] != "10.00" || !s.changed {
			t.Fatalf("after deleting err_code: data %v, changed %v; want amount alone, changed", s.data, s.changed)
		}
	})
	t.Run("a value equal to the name", func(t *testing.T) {
		s := &state{raw: []byte(`{"last":"err_code"}`)}
		s.deleteField("err_code")
		if s.data == nil || s.changed {
			t.Fatalf("data %v, changed %v; want it decoded (the name is mentioned) and unchanged", s.data, s.changed)
		}
	})
	t.Run("a write", func(t *testing.T) {
		s := &state{raw: []byte(`{"amount":"10.00"}`)}
		s.setField("status", "held")
		if s.data["amount"] != "10.00" || s.data["status"] != "held" {
			t.Fatalf("data %v; want the stored field and the new one", s.data)
		}
	})
	t.Run("bytes that do not decode", func(t *testing.T) {
		s := &state{raw: []byte(`{"amount":`)}
		if d := s.fields(); len(d) != 0 || s.dataErr == nil {
			t.Fatalf("fields %v, error %v; want empty data and the decoding error kept for the commit", d, s.dataErr)
		}
		s.t = &store.Task{}
		if err := (&Engine{}).commit(context.Background(), s); err == nil || !strings.Contains(err.Error(), "stored data") {
			t.Fatalf("commit = %v; want the stored data's error, nothing written", err)
		}
	})
}

func TestMentions(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want bool
	}{
		{`{"err_code":1}`, true},
		{`{"a":{"err_code":1}}`, true},
		{`{"a":"err_code"}`, true},
		{`{"my_err_code":1}`, false},
		{`{"err_code_2":1}`, false},
		{`{"x":"err_code`, false},
		{`err_code"`, false},
		{``, false},
	} {
		if got := mentions([]byte(c.raw), "err_code"); got != c.want {
			t.Errorf("mentions(%s) = %v, want %v", c.raw, got, c.want)
		}
	}
}
