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
func liqpaySign(privateKey, data string) string {
	sum := sha1.Sum([]byte(privateKey + data + privateKey))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// liqpayEncode builds the form body of a LiqPay request.
func liqpayEncode(privateKey string, params map[string]any) ([]byte, error) {
	js, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	data := base64.StdEncoding.EncodeToString(js)
	form := url.Values{"data": {data}, "signature": {liqpaySign(privateKey, data)}}
	return []byte(form.Encode()), nil
}

// liqpayDecode verifies and decodes a LiqPay envelope (a callback). A missing
// or wrong signature is an unauthorized error; the comparison is constant
// time.
func liqpayDecode(privateKey string, body []byte) (map[string]any, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, conveyor.Errorf(conveyor.EInvalid, "liqpay callback: body is not a form: %v", err)
	}
	data, sig := form.Get("data"), form.Get("signature")
	if data == "" || sig == "" {
		return nil, conveyor.Errorf(conveyor.EInvalid, "liqpay callback: want form fields data and signature")
	}
	want := liqpaySign(privateKey, data)
	if subtle.ConstantTimeCompare([]byte(want), []byte(sig)) != 1 {
		return nil, conveyor.Errorf(conveyor.EUnauthorized, "liqpay callback: signature does not verify")
	}
	js, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, conveyor.Errorf(conveyor.EInvalid, "liqpay callback: data is not base64")
	}
	return decodeObject(js)
}

// decodeObject decodes a JSON object keeping numbers exact.
func decodeObject(b []byte) (map[string]any, error) {
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
