package liqpay

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// marshal is json.Marshal for the sandbox's replies and callbacks, which
// are flat objects of strings, numbers and bools: those it writes itself,
// in json.Marshal's key order and bytes, without reflection; anything else
// goes to json.Marshal.
func marshal(v any) ([]byte, error) {
	if m, ok := v.(map[string]any); ok && m != nil {
		if b, ok := appendFlatObject(make([]byte, 0, 1024), m); ok {
			return b, nil
		}
	}
	return json.Marshal(v)
}

// appendFlatObject appends m as json.Marshal writes it; ok is false when a
// value is not a scalar it writes exactly.
func appendFlatObject(dst []byte, m map[string]any) (_ []byte, ok bool) {
	var buf [48]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, ok = appendPlainString(dst, k); !ok {
			return dst, false
		}
		dst = append(dst, ':')
		switch x := m[k].(type) {
		case nil:
			dst = append(dst, "null"...)
		case bool:
			dst = strconv.AppendBool(dst, x)
		case string:
			if dst, ok = appendPlainString(dst, x); !ok {
				return dst, false
			}
		case json.Number:
			if !validNumber(string(x)) {
				return dst, false
			}
			dst = append(dst, x...)
		case int:
			dst = strconv.AppendInt(dst, int64(x), 10)
		case int64:
			dst = strconv.AppendInt(dst, x, 10)
		default:
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// appendPlainString quotes s when json.Marshal would write it unescaped:
// printable ASCII but " \ < > &, and valid UTF-8 but U+2028 and U+2029.
func appendPlainString(dst []byte, s string) ([]byte, bool) {
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

// validNumber reports whether s is a number in JSON's grammar, as
// json.Marshal requires of a json.Number.
func validNumber(s string) bool {
	i := 0
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
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(s)
}

// decodeFlat decodes b, a JSON object of scalars between optional
// whitespace, to what json.Decoder with UseNumber decodes it to (numbers as
// json.Number; the last of duplicate keys wins). ok is false for anything
// else, and for strings with escapes, control characters or invalid UTF-8:
// encoding/json decodes those.
func decodeFlat(b []byte) (_ map[string]any, ok bool) {
	s := string(b) // one copy: every key and string value is a slice of it
	i := 0
	space := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	str := func() (string, bool) {
		start, ascii := i+1, true
		for j := start; j < len(s); j++ {
			switch c := s[j]; {
			case c == '"':
				if !ascii && !utf8.ValidString(s[start:j]) {
					return "", false
				}
				i = j + 1
				return s[start:j], true
			case c == '\\' || c < 0x20:
				return "", false
			case c >= utf8.RuneSelf:
				ascii = false
			}
		}
		return "", false
	}
	space()
	if i == len(s) || s[i] != '{' {
		return nil, false
	}
	i++
	m := make(map[string]any, 32)
	space()
	if i < len(s) && s[i] == '}' {
		i++
	} else {
		for {
			space()
			if i == len(s) || s[i] != '"' {
				return nil, false
			}
			k, ok := str()
			if space(); !ok || i == len(s) || s[i] != ':' {
				return nil, false
			}
			i++
			space()
			if i == len(s) {
				return nil, false
			}
			switch c := s[i]; {
			case c == '"':
				v, ok := str()
				if !ok {
					return nil, false
				}
				m[k] = v
			case c == '-' || '0' <= c && c <= '9':
				j := i
				for j < len(s) && strings.IndexByte("+-.0123456789eE", s[j]) >= 0 {
					j++
				}
				if !validNumber(s[i:j]) {
					return nil, false
				}
				m[k], i = json.Number(s[i:j]), j
			case strings.HasPrefix(s[i:], "true"):
				m[k], i = true, i+4
			case strings.HasPrefix(s[i:], "false"):
				m[k], i = false, i+5
			case strings.HasPrefix(s[i:], "null"):
				m[k], i = nil, i+4
			default:
				return nil, false
			}
			space()
			if i == len(s) {
				return nil, false
			}
			if s[i] == '}' {
				i++
				break
			}
			if s[i] != ',' {
				return nil, false
			}
			i++
		}
	}
	space()
	return m, i == len(s)
}
