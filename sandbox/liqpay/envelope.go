package liqpay

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // SHA-1 is LiqPay's wire format, not our choice.
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/conveyor-dev/conveyor/internal/exactjson"
)

// ErrInvalidSignature reports that a signature does not match its data under
// the given private key, or is missing.
var ErrInvalidSignature = errors.New("liqpay: invalid signature")

// ErrMalformed reports that data is not Base64 of a JSON object.
var ErrMalformed = errors.New("liqpay: malformed data")

// Sign returns LiqPay's signature of data: Base64 of the raw SHA-1 digest of
// privateKey + data + privateKey. The hash covers the Base64 data string as
// sent on the wire, not the JSON inside it (holds.md §1.1).
func Sign(privateKey, data string) string {
	sig := sign(privateKey, data)
	return string(sig[:])
}

// sign is Sign without allocating.
func sign(privateKey, data string) [28]byte {
	var stack [2048]byte // the message of a typical envelope fits
	msg := append(append(append(stack[:0], privateKey...), data...), privateKey...)
	sum := sha1.Sum(msg) //nolint:gosec // wire format
	var sig [28]byte
	base64.StdEncoding.Encode(sig[:], sum[:])
	return sig
}

// Encode marshals params to JSON and returns the LiqPay envelope for it: data
// is standard Base64 (with padding) of the JSON, signature is Sign(privateKey,
// data). Pass a json.RawMessage to control the exact bytes (and key order).
func Encode(privateKey string, params any) (data, signature string, err error) {
	raw, err := exactjson.Marshal(params)
	if err != nil {
		return "", "", fmt.Errorf("liqpay: encode params: %w", err)
	}
	data = base64.StdEncoding.EncodeToString(raw)
	return data, Sign(privateKey, data), nil
}

// Decode verifies signature over data in constant time and returns the JSON
// object inside data. Numbers come back as json.Number so amounts stay exact.
// It returns ErrInvalidSignature when the signature does not match (the data
// is not looked at then) and ErrMalformed when data is not Base64 JSON.
func Decode(privateKey, data, signature string) (map[string]any, error) {
	if !verify(privateKey, data, signature) {
		return nil, ErrInvalidSignature
	}
	return decodeData(data)
}

// verify reports whether signature is Sign(privateKey, data), comparing in
// constant time so the sandbox does not teach timing attacks by example.
func verify(privateKey, data, signature string) bool {
	if signature == "" {
		return false
	}
	want := sign(privateKey, data)
	return subtle.ConstantTimeCompare(want[:], []byte(signature)) == 1
}

// decodeData turns a Base64 data field into its JSON object without checking
// any signature; the server needs the public_key inside to find the key.
func decodeData(data string) (map[string]any, error) {
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, fmt.Errorf("%w: data is not standard Base64", ErrMalformed)
	}
	if v, ok := exactjson.Decode(raw); ok {
		if obj, ok := v.(map[string]any); ok {
			return obj, nil
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, fmt.Errorf("%w: data is not a JSON object", ErrMalformed)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing bytes after the JSON object", ErrMalformed)
	}
	return obj, nil
}
