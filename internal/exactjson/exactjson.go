// Package exactjson reads and writes JSON exactly as encoding/json does,
// without its reflection and map sorting costs where it can: the task data,
// provider replies, callbacks and submits that pass on every event. Each
// function handles a subset of inputs whose result it knows to be value for
// value (Decode) or byte for byte (Append, Marshal) what encoding/json gives,
// and falls back to encoding/json, or says so, for anything else. The fuzz
// tests hold them to that.
package exactjson

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// maxJSONDepth bounds Decode's nesting; deeper input goes to
// encoding/json, which has its own limit.
const maxJSONDepth = 1000

// Decode decodes b, one JSON value between optional whitespace, to
// exactly what json.Decoder with UseNumber decodes it to: objects as
// map[string]any (the last of duplicate keys wins), arrays as []any,
// numbers as json.Number, strings, bools and nil; in a fraction of the time
// and allocations. ok is false when b is not valid JSON and when it holds
// what only encoding/json decodes exactly (strings with escapes, control
// characters or invalid UTF-8, nesting deeper than maxJSONDepth): decode it
// with encoding/json then.
func Decode(b []byte) (v any, ok bool) {
	kvs := stacks.Get().(*[]member)
	r := jsonReader{s: string(b), kvs: (*kvs)[:0]} // one copy of b: every string read shares it
	v, ok = r.value()
	if cap(r.kvs) <= maxPooledStack {
		clear(r.kvs) // drop the references a failed read left (object clears its own)
		*kvs = r.kvs[:0]
		stacks.Put(kvs)
	}
	if !ok {
		return nil, false
	}
	r.space()
	return v, r.i == len(r.s)
}

// stacks pools the member stacks of Decode: the stack escapes to the heap
// (the reader's methods take it by pointer), and a fresh one for each
// decode was most of what decoding a task's data allocated (1 KiB).
var stacks = sync.Pool{New: func() any {
	s := make([]member, 0, 32)
	return &s
}}

// maxPooledStack bounds the stacks that go back to the pool, so that one
// huge object does not keep its stack alive there.
const maxPooledStack = 1024

// jsonReader is Decode's state. kvs is a stack of the members of the
// objects being read, so that each map is made at its final size.
type jsonReader struct {
	s     string
	i     int
	depth int
	kvs   []member
}

type member struct {
	key   string
	value any
}

func (r *jsonReader) space() {
	for r.i < len(r.s) {
		switch r.s[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

func (r *jsonReader) value() (any, bool) {
	r.space()
	if r.i >= len(r.s) {
		return nil, false
	}
	switch c := r.s[r.i]; {
	case c == '{':
		return r.object()
	case c == '[':
		return r.array()
	case c == '"':
		s, ok := r.str()
		return s, ok
	case c == '-' || c >= '0' && c <= '9':
		return r.number()
	case strings.HasPrefix(r.s[r.i:], "true"):
		r.i += 4
		return true, true
	case strings.HasPrefix(r.s[r.i:], "false"):
		r.i += 5
		return false, true
	case strings.HasPrefix(r.s[r.i:], "null"):
		r.i += 4
		return nil, true
	}
	return nil, false
}

// next skips whitespace and reports whether the next byte is c, consuming
// it if so.
func (r *jsonReader) next(c byte) bool {
	r.space()
	if r.i < len(r.s) && r.s[r.i] == c {
		r.i++
		return true
	}
	return false
}

func (r *jsonReader) object() (any, bool) {
	r.i++ // {
	if r.depth++; r.depth > maxJSONDepth {
		return nil, false
	}
	base := len(r.kvs)
	if !r.next('}') {
		for {
			r.space()
			if r.i >= len(r.s) || r.s[r.i] != '"' {
				return nil, false
			}
			k, ok := r.str()
			if !ok || !r.next(':') {
				return nil, false
			}
			v, ok := r.value()
			if !ok {
				return nil, false
			}
			r.kvs = append(r.kvs, member{k, v})
			if r.next('}') {
				break
			}
			if !r.next(',') {
				return nil, false
			}
		}
	}
	m := make(map[string]any, len(r.kvs)-base)
	for _, kv := range r.kvs[base:] {
		m[kv.key] = kv.value
	}
	clear(r.kvs[base:]) // drop the references
	r.kvs = r.kvs[:base]
	r.depth--
	return m, true
}

func (r *jsonReader) array() (any, bool) {
	r.i++ // [
	if r.depth++; r.depth > maxJSONDepth {
		return nil, false
	}
	a := make([]any, 0)
	if !r.next(']') {
		for {
			v, ok := r.value()
			if !ok {
				return nil, false
			}
			a = append(a, v)
			if r.next(']') {
				break
			}
			if !r.next(',') {
				return nil, false
			}
		}
	}
	r.depth--
	return a, true
}

// str reads a string without escapes; the text is a slice of the input.
func (r *jsonReader) str() (string, bool) {
	start, ascii := r.i+1, true
	for j := start; j < len(r.s); j++ {
		switch c := r.s[j]; {
		case c == '"':
			s := r.s[start:j]
			if !ascii && !utf8.ValidString(s) {
				return "", false // encoding/json would replace the bad bytes
			}
			r.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// number reads a number in JSON's grammar, kept as written.
func (r *jsonReader) number() (any, bool) {
	end, ok := numberEnd(r.s, r.i)
	if !ok {
		return nil, false
	}
	n := json.Number(r.s[r.i:end])
	r.i = end
	return n, true
}

// numberEnd returns where the number in JSON's grammar that starts at
// s[i] ends; ok is false when none starts there.
func numberEnd(s string, i int) (end int, ok bool) {
	digits := func() bool {
		start := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		return 0, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return 0, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return 0, false
		}
	}
	return i, true
}

// Append appends v encoded as json.Marshal would encode it. ok is false
// when v holds anything but nil, bools, strings that need no escaping,
// valid json.Numbers, integers, and map[string]any and []any of those
// nested at most maxJSONDepth deep (json.Marshal reports cycles); dst may
// then hold a partial encoding and the caller uses json.Marshal.
func Append(dst []byte, v any) (_ []byte, ok bool) { return appendJSONValue(dst, v, 0) }

func appendJSONValue(dst []byte, v any, depth int) (_ []byte, ok bool) {
	if depth > maxJSONDepth {
		return dst, false
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case bool:
		return strconv.AppendBool(dst, x), true
	case string:
		return appendJSONString(dst, x)
	case json.Number:
		if !validNumber(string(x)) {
			return dst, false
		}
		return append(dst, x...), true
	case int:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int64:
		return strconv.AppendInt(dst, x, 10), true
	case map[string]any:
		if x == nil {
			return append(dst, "null"...), true
		}
		var buf [32]string
		keys := buf[:0]
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, ok = appendJSONString(dst, k); !ok {
				return dst, false
			}
			dst = append(dst, ':')
			if dst, ok = appendJSONValue(dst, x[k], depth+1); !ok {
				return dst, false
			}
		}
		return append(dst, '}'), true
	case []any:
		if x == nil {
			return append(dst, "null"...), true
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, ok = appendJSONValue(dst, e, depth+1); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	}
	return dst, false
}

// appendJSONString quotes s when json.Marshal would write it unescaped:
// printable ASCII but " \ < > &, and valid UTF-8 but U+2028 and U+2029.
func appendJSONString(dst []byte, s string) ([]byte, bool) {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return dst, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if !ascii && (!utf8.ValidString(s) || strings.ContainsAny(s, "\u2028\u2029")) {
		return dst, false
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"'), true
}

// validNumber reports whether s is a number in JSON's grammar.
func validNumber(s string) bool {
	end, ok := numberEnd(s, 0)
	return ok && end == len(s)
}

// Marshal returns what json.Marshal returns for v, byte for byte: by
// Append when it can (decoded JSON of plain strings, numbers, objects
// and arrays: a task's data, a reply), by json.Marshal otherwise.
func Marshal(v any) ([]byte, error) {
	if b, ok := Append(make([]byte, 0, 512), v); ok {
		return b, nil
	}
	return json.Marshal(v)
}
