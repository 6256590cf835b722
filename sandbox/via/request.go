package via

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// maxBodyBytes bounds a request body; VIA requests are small objects.
const maxBodyBytes = 1 << 20

// maxExternalID bounds externalId [inferred: VIA documents no limit].
const maxExternalID = 255

// fields is a decoded request body: the top-level JSON object with each
// value kept raw, so that types are checked exactly (an amount never passes
// through float64).
type fields map[string]json.RawMessage

// decodeBody reads a request body. A blank body is an empty object (the
// docs send holdId in the query string with no body); anything else must be
// exactly one JSON object. The documentation's own samples are not valid
// JSON (holds.md §2.1) and are rejected like any other.
func decodeBody(raw []byte) (fields, *apiError) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return fields{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var f fields
	err := dec.Decode(&f)
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return nil, invalid(fmt.Sprintf("the body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, invalid("the body is not valid JSON: it ends too early")
	case err != nil || f == nil:
		return nil, invalid("the body must be a JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid("the body has data after the JSON object")
	}
	return f, nil
}

// present reports whether key is in the body with a value other than null.
func (f fields) present(key string) bool {
	raw, ok := f[key]
	return ok && string(raw) != "null"
}

// str reads an optional string field; absent or null gives "".
func (f fields) str(key string) (string, *apiError) {
	if !f.present(key) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(f[key], &s); err != nil {
		return "", invalid(key + ": must be a string")
	}
	return s, nil
}

// need reads a required string field; blank is a validation error.
func (f fields) need(key string) (string, *apiError) {
	s, err := f.str(key)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(s) == "" {
		return "", invalid(key + ": is required")
	}
	return s, nil
}

// integer reads an optional positive integer field given as a JSON integer
// or a string of digits: 10000 and "10000" are the same, 100.5, 1e3, -5, 0
// and "10 000" are errors. ok is false when the field is absent.
func (f fields) integer(key string) (n int64, ok bool, err *apiError) {
	if !f.present(key) {
		return 0, false, nil
	}
	text := string(f[key])
	if strings.HasPrefix(text, `"`) {
		if json.Unmarshal(f[key], &text) != nil {
			return 0, false, invalid(key + ": must be a positive integer")
		}
	}
	n, err = parsePositive(key, text)
	return n, err == nil, err
}

// needInteger reads a required positive integer field.
func (f fields) needInteger(key string) (int64, *apiError) {
	n, ok, err := f.integer(key)
	if err == nil && !ok {
		err = invalid(key + ": is required")
	}
	return n, err
}

// parsePositive parses a positive decimal integer with no sign, exponent,
// fraction, leading zero or spaces.
func parsePositive(key, text string) (int64, *apiError) {
	if text == "" || text[0] < '1' || text[0] > '9' || strings.TrimLeft(text, "0123456789") != "" {
		return 0, invalid(key + ": must be a positive integer (no fraction, exponent or sign)")
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, invalid(key + ": is too large")
	}
	return n, nil
}

// accounts reads the required accounts field. The docs call it a string
// but their example sends an object (holds.md §2.2), so both are accepted.
// It returns a canonical JSON rendering, so that two bodies with the same
// accounts in a different key order compare equal.
func (f fields) accounts() (string, *apiError) {
	const key = "accounts"
	if !f.present(key) {
		return "", invalid(key + ": is required")
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(f[key]))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", invalid(key + ": must be an object or a string")
	}
	switch v := v.(type) {
	case map[string]any:
	case string:
		if strings.TrimSpace(v) == "" {
			return "", invalid(key + ": is required")
		}
	default:
		return "", invalid(key + ": must be an object or a string")
	}
	canonical, err := json.Marshal(v)
	if err != nil {
		return "", invalid(key + ": must be an object or a string")
	}
	return string(canonical), nil
}

// holdID reads holdId from the query string or the body. The docs pass it
// in the query string of a POST with no body (holds.md §2.2); a JSON body is
// accepted too. Both at once must agree.
func holdID(query url.Values, body fields) (string, *apiError) {
	fromBody, err := body.str("holdId")
	if err != nil {
		return "", err
	}
	fromQuery := query.Get("holdId")
	switch {
	case fromQuery != "" && fromBody != "" && fromQuery != fromBody:
		return "", invalid("holdId: the query string and the body disagree")
	case fromQuery != "":
		return fromQuery, nil
	case strings.TrimSpace(fromBody) != "":
		return fromBody, nil
	}
	return "", invalid("holdId: is required (in the query string or the body)")
}
