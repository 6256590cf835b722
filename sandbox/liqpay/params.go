package liqpay

import (
	"encoding/json"
	"math/big"
	"regexp"
	"strings"
)

// apiError is a request-level failure: LiqPay answers it with HTTP 200 and
// {"result":"error","status":"error","err_code":...,"err_description":...}.
type apiError struct {
	Code        string
	Description string
}

// Error implements error.
func (e *apiError) Error() string { return e.Code + ": " + e.Description }

// errCode builds an apiError.
func errCode(code, description string) *apiError {
	return &apiError{Code: code, Description: description}
}

// errMissing reports a required parameter that is absent or empty.
func errMissing(param string) *apiError {
	return errCode("err_missing", "required parameter "+param+" is missing")
}

// errWrong reports a parameter that is present but invalid.
func errWrong(param, why string) *apiError {
	return errCode("err_wrong", "parameter "+param+" is invalid: "+why)
}

// params is a decoded request: the JSON object inside data, numbers kept as
// json.Number.
type params map[string]any

// get returns a scalar parameter as text. LiqPay's own examples send numbers
// both as strings and as JSON numbers, so both are accepted; true/false read
// as "1"/"0". Absent or null gives "". Objects and arrays are err_wrong.
func (p params) get(key string) (string, *apiError) {
	switch v := p[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		if v {
			return "1", nil
		}
		return "0", nil
	default:
		return "", errWrong(key, "expected a string or a number")
	}
}

// need is get for a required parameter: blank is err_missing.
func (p params) need(key string) (string, *apiError) {
	v, err := p.get(key)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(v) == "" {
		return "", errMissing(key)
	}
	return v, nil
}

// flag reports whether a "1"-style switch such as prepare or sandbox is on.
func (p params) flag(key string) bool {
	v, err := p.get(key)
	return err == nil && (v == "1" || strings.EqualFold(v, "true"))
}

// amountPattern is a positive-looking decimal in major units with at most
// two fractional digits (kopecks/cents); no signs, no exponents.
var amountPattern = regexp.MustCompile(`^[0-9]{1,12}(\.[0-9]{1,2})?$`)

// parseAmount reads a decimal amount exactly (never through float64) and
// requires it to be greater than zero.
func parseAmount(key, text string) (*big.Rat, *apiError) {
	text = strings.TrimSpace(text)
	if !amountPattern.MatchString(text) {
		return nil, errWrong(key, "expected a decimal amount like 7.34")
	}
	r, ok := new(big.Rat).SetString(text)
	if !ok || r.Sign() <= 0 {
		return nil, errWrong(key, "must be greater than zero")
	}
	return r, nil
}

// optionalAmount reads an optional amount; nil means "not given".
func (p params) optionalAmount(key string) (*big.Rat, *apiError) {
	text, err := p.get(key)
	if err != nil || strings.TrimSpace(text) == "" {
		return nil, err
	}
	return parseAmount(key, text)
}

// decimal renders an amount as a JSON number in major units without
// trailing zeros: 3, 7.34, 1.5.
func decimal(r *big.Rat) json.Number {
	s := r.FloatString(2)
	s = strings.TrimRight(s, "0")
	s = strings.TrimSuffix(s, ".")
	return json.Number(s)
}
