package liqpay

import (
	"strconv"
	"strings"
	"time"
)

// Sandbox test cards (holds.md §1.2). Any other Luhn-valid card is held at
// once; any other card failing the Luhn check is rejected with err_card.
const (
	CardSuccess      = "4242424242424242" // hold_wait at once
	Card3DS          = "4000000000003063" // 3ds_verify, then hold_wait on confirm
	CardOTP          = "4000000000003089" // otp_verify, then hold_wait on a right OTP
	CardCVV          = "4000000000003055" // cvv_verify, then hold_wait on confirm with card_cvv
	CardLimit        = "4000000000000002" // failure, err_code limit
	CardInsufficient = "4000000000009995" // failure, err_code 9859 (insufficient funds)
)

// verdict is what the sandbox's "issuer" says about a card.
type verdict struct {
	status      string
	errCode     string
	description string
	is3DS       bool
}

// cardVerdicts are the fixed outcomes of the test cards.
var cardVerdicts = map[string]verdict{
	CardSuccess:      {status: statusHoldWait},
	Card3DS:          {status: status3DSVerify, is3DS: true},
	CardOTP:          {status: statusOTPVerify},
	CardCVV:          {status: statusCVVVerify},
	CardLimit:        {status: statusFailure, errCode: "limit", description: "customer amount or count limit reached"},
	CardInsufficient: {status: statusFailure, errCode: "9859", description: "insufficient funds"},
}

// judgeCard returns the outcome of holding funds on pan; ok is false when the
// number is not a card at all (err_card).
func judgeCard(pan string) (v verdict, ok bool) {
	if v, known := cardVerdicts[pan]; known {
		return v, true
	}
	if !luhnValid(pan) {
		return verdict{}, false
	}
	return verdict{status: statusHoldWait}, true
}

// panSeparators are what people type between a card number's digits.
// Built once: a Replacer builds its tables on first use, 6 KB each time.
var panSeparators = strings.NewReplacer(" ", "", "-", "")

// normalizePAN strips the spaces and dashes people type into card numbers
// and reports whether 12 to 19 digits remain.
func normalizePAN(raw string) (string, bool) {
	pan := panSeparators.Replace(raw)
	if len(pan) < 12 || len(pan) > 19 || !allDigits(pan) {
		return "", false
	}
	return pan, true
}

// luhnValid reports whether a digit string passes the Luhn checksum.
func luhnValid(digits string) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// allDigits reports whether s is non-empty and all ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// card is all the sandbox keeps of a card: never the PAN or the CVV.
type card struct {
	mask2   string // first 6 * last 2, LiqPay's sender_card_mask2
	kind    string // sender_card_type
	bank    string // sender_card_bank
	country int    // sender_card_country, ISO 3166-1 numeric
}

// describeCard derives the retained card facts from a PAN.
func describeCard(pan string) card {
	kind := "unknown"
	switch pan[0] {
	case '4':
		kind = "visa"
	case '5', '2':
		kind = "mc"
	}
	return card{
		mask2:   pan[:6] + "*" + pan[len(pan)-2:],
		kind:    kind,
		bank:    "LiqPay Sandbox Bank",
		country: 804,
	}
}

// cardExpired validates card_exp_month ("MM") and card_exp_year ("YY" or
// "YYYY") and reports whether the card expired before now. A card is valid
// through the last day of its expiry month.
func cardExpired(month, year string, now time.Time) (bool, *apiError) {
	m, err := strconv.Atoi(month)
	if err != nil || !allDigits(month) || m < 1 || m > 12 {
		return false, errWrong("card_exp_month", "expected MM, 01 to 12")
	}
	y, err := strconv.Atoi(year)
	if err != nil || !allDigits(year) || (len(year) != 2 && len(year) != 4) {
		return false, errWrong("card_exp_year", "expected YY")
	}
	if len(year) == 2 {
		y += 2000
	}
	firstInvalid := time.Date(y, time.Month(m)+1, 1, 0, 0, 0, 0, time.UTC)
	return !now.Before(firstInvalid), nil
}

// validCVV reports whether cvv looks like a card security code.
func validCVV(cvv string) bool {
	return (len(cvv) == 3 || len(cvv) == 4) && allDigits(cvv)
}

// validPhone reports whether phone is an international number such as
// 380950000001 (an optional leading + is allowed).
func validPhone(phone string) bool {
	digits := strings.TrimPrefix(phone, "+")
	return len(digits) >= 10 && len(digits) <= 15 && allDigits(digits)
}
