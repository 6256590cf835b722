package nodes

import (
	"bytes"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/internal/exactjson"
	"github.com/conveyor-dev/conveyor/processes"
)

// Codecs: how a request body is encoded and a callback body decoded.
const (
	// CodecJSON is a JSON object body (the default).
	CodecJSON = "json"
	// CodecForm is an application/x-www-form-urlencoded body of flat fields.
	CodecForm = "form"
	// CodecLiqPay is LiqPay's envelope: form fields data = base64(JSON) and
	// signature = base64(sha1(private_key + data + private_key)).
	CodecLiqPay = "liqpay"
)

var codecs = []string{CodecJSON, CodecForm, CodecLiqPay}

// codecField is a codec as a flow writes it: a name (codec: form) or a
// mapping that also names the secrets of a signed codec.
type codecField CodecConfig

// UnmarshalYAML accepts both forms; a mapping is decoded with the caller's
// options, so unknown keys are reported with their positions.
func (f *codecField) UnmarshalYAML(construct func(any) error) error {
	var name string
	if err := construct(&name); err == nil {
		*f = codecField{Name: name}
		return nil
	}
	return construct((*CodecConfig)(f))
}

// compileCodec checks the codec written at path (JSON when absent) and the
// secrets it names. does says what the private key is for, for messages.
func compileCodec(c *processes.NodeContext, path string, cc CodecConfig, does string) CodecConfig {
	namePath := path
	if c.Has(path + ".name") {
		namePath = path + ".name"
	}
	if cc.Name == "" {
		if c.Has(path) {
			c.Errorf(path, "missing codec name (want one of %s)", strings.Join(codecs, ", "))
		}
		cc.Name = CodecJSON
	}
	switch cc.Name {
	case CodecJSON, CodecForm:
		if cc.PrivateKey != "" || cc.PublicKey != "" {
			c.Errorf(path, "the %s codec takes no keys", cc.Name)
		}
	case CodecLiqPay:
		if cc.PrivateKey == "" {
			c.Errorf(path, "the liqpay codec needs private_key: the secret that %s", does)
		} else {
			c.Secret(path+".private_key", cc.PrivateKey)
		}
		if cc.PublicKey != "" {
			c.Secret(path+".public_key", cc.PublicKey)
		}
	default:
		c.Errorf(namePath, "%s", codecError(cc.Name))
	}
	return cc
}

// liqpaySign computes LiqPay's signature over the base64 data string.
func liqpaySign(privateKey string, data []byte) [28]byte {
	var stack [2048]byte // the message of a typical envelope fits
	sum := sha1.Sum(append(append(append(stack[:0], privateKey...), data...), privateKey...))
	var sig [28]byte
	base64.StdEncoding.Encode(sig[:], sum[:])
	return sig
}

// liqpayEncode builds the form body of a LiqPay request: the fields data
// and signature, as url.Values.Encode writes them.
func liqpayEncode(privateKey string, params map[string]any) ([]byte, error) {
	js, err := exactjson.Marshal(params)
	if err != nil {
		return nil, err
	}
	data := make([]byte, base64.StdEncoding.EncodedLen(len(js)))
	base64.StdEncoding.Encode(data, js)
	sig := liqpaySign(privateKey, data)
	form := make([]byte, 0, len("data=&signature=")+3*(len(data)+len(sig)))
	form = appendQueryEscape(append(form, "data="...), data)
	form = appendQueryEscape(append(form, "&signature="...), sig[:])
	return form, nil
}

// appendQueryEscape appends b escaped as url.QueryEscape does.
func appendQueryEscape(dst, b []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			dst = append(dst, c)
		case c == ' ':
			dst = append(dst, '+')
		default:
			dst = append(dst, '%', hex[c>>4], hex[c&15])
		}
	}
	return dst
}

// liqpayDecode verifies and decodes a LiqPay envelope (a callback). A missing
// or wrong signature is an unauthorized error; the comparison is constant
// time.
func liqpayDecode(privateKey string, body []byte) (map[string]any, error) {
	data, sig, ok := liqpayFields(body)
	if !ok {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, conveyor.Errorf(conveyor.EInvalid, "liqpay callback: body is not a form: %v", err)
		}
		data, sig = []byte(form.Get("data")), []byte(form.Get("signature"))
	}
	if len(data) == 0 || len(sig) == 0 {
		return nil, conveyor.Errorf(conveyor.EInvalid, "liqpay callback: want form fields data and signature")
	}
	want := liqpaySign(privateKey, data)
	if subtle.ConstantTimeCompare(want[:], sig) != 1 {
		return nil, conveyor.Errorf(conveyor.EUnauthorized, "liqpay callback: signature does not verify")
	}
	js := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
	n, err := base64.StdEncoding.Decode(js, data)
	if err != nil {
		return nil, conveyor.Errorf(conveyor.EInvalid, "liqpay callback: data is not base64")
	}
	return decodeObject(js[:n])
}

// maxFormFields bounds the fields liqpayFields reads; url.ParseQuery has a
// limit of its own.
const maxFormFields = 64

// liqpayFields returns the first data and signature fields of a form body,
// unescaped, as url.ParseQuery reads them, without building the whole
// form. ok is false for a body ParseQuery might read otherwise or refuse
// (a semicolon, an escaped field name, a bad escape, many fields): the
// caller then asks ParseQuery.
func liqpayFields(body []byte) (data, sig []byte, ok bool) {
	if bytes.IndexByte(body, ';') >= 0 || bytes.Count(body, []byte("&")) >= maxFormFields {
		return nil, nil, false
	}
	var seenData, seenSig bool
	for rest := body; len(rest) > 0; {
		var pair []byte
		pair, rest, _ = bytes.Cut(rest, []byte("&"))
		if len(pair) == 0 {
			continue
		}
		key, value, _ := bytes.Cut(pair, []byte("="))
		if bytes.ContainsAny(key, "%+") {
			return nil, nil, false
		}
		v, ok := queryUnescape(value)
		if !ok {
			return nil, nil, false
		}
		switch {
		case string(key) == "data" && !seenData:
			data, seenData = v, true
		case string(key) == "signature" && !seenSig:
			sig, seenSig = v, true
		}
	}
	return data, sig, true
}

// queryUnescape undoes url.QueryEscape; ok is false where
// url.QueryUnescape fails. b itself is returned when it holds no escapes.
func queryUnescape(b []byte) ([]byte, bool) {
	if bytes.IndexByte(b, '%') < 0 && bytes.IndexByte(b, '+') < 0 {
		return b, true
	}
	out := make([]byte, 0, len(b))
	for {
		i := bytes.IndexByte(b, '%')
		run := b
		if i >= 0 {
			run = b[:i]
		}
		start := len(out)
		out = append(out, run...)
		if bytes.IndexByte(run, '+') >= 0 {
			for k := start; k < len(out); k++ {
				if out[k] == '+' {
					out[k] = ' '
				}
			}
		}
		if i < 0 {
			return out, true
		}
		if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
			return nil, false
		}
		out = append(out, unhex(b[i+1])<<4|unhex(b[i+2]))
		b = b[i+3:]
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// decodeObject decodes a JSON object keeping numbers exact.
func decodeObject(b []byte) (map[string]any, error) {
	if v, ok := exactjson.Decode(b); ok {
		if m, ok := v.(map[string]any); ok {
			return m, nil
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, conveyor.Errorf(conveyor.EInvalid, "body is not a JSON object")
	}
	if dec.More() {
		return nil, conveyor.Errorf(conveyor.EInvalid, "body has data after the JSON object")
	}
	return m, nil
}

// decodeForm decodes a form body: single values as strings, repeated ones as
// lists.
func decodeForm(b []byte) (map[string]any, error) {
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, conveyor.Errorf(conveyor.EInvalid, "body is not a form: %v", err)
	}
	m := make(map[string]any, len(form))
	for k, vs := range form {
		if len(vs) == 1 {
			m[k] = vs[0]
			continue
		}
		l := make([]any, len(vs))
		for i, v := range vs {
			l[i] = v
		}
		m[k] = l
	}
	return m, nil
}

// encodeForm encodes a flat map as a form, in key order.
func encodeForm(m map[string]any) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	form := url.Values{}
	for _, k := range keys {
		form.Set(k, stringValue(m[k]))
	}
	return []byte(form.Encode())
}

func stringValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return string(x)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

// DecodeBody decodes a callback body by content type: JSON objects, forms, or
// (JSON) anything else.
func DecodeBody(contentType string, b []byte) (map[string]any, error) {
	if strings.HasPrefix(contentType, "application/x-www-form-urlencoded") {
		return decodeForm(b)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return map[string]any{}, nil
	}
	return decodeObject(b)
}

func codecError(name string) string {
	return fmt.Sprintf("unknown codec %q (want one of %s)", name, strings.Join(codecs, ", "))
}
