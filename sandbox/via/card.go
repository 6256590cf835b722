package via

// Outcome is what the sandbox's issuer does when a hold is placed on a
// card. The zero value is OutcomeHold.
type Outcome int

// Outcomes of holding funds on a card.
const (
	// OutcomeHold holds the funds: the hold ends CREATE_SUCCESS.
	OutcomeHold Outcome = iota
	// OutcomeInsufficientFunds declines the hold: it ends CREATE_ERROR.
	OutcomeInsufficientFunds
	// OutcomePending never answers: the hold reaches CREATE_PENDING and
	// stays there (it does not expire either).
	OutcomePending
)

// Sandbox test card tokens: 32 upper-case alphanumerics like VIA's own
// (holds.md §2.1). Any other token is CARD_NOT_FOUND.
const (
	// CardSuccess is the token of the documentation's create example;
	// holds on it succeed.
	CardSuccess = "VLH8VNWKE3SBBBZEKA86T5PF72ZNTEST"
	// CardInsufficientFunds declines every hold: CREATE_ERROR.
	CardInsufficientFunds = "VLH8VNWKE3SBBBZEKA86T5PF7NOFUNDS"
	// CardPending leaves every hold in CREATE_PENDING for ever.
	CardPending = "VLH8VNWKE3SBBBZEKA86T5PF7PENDING"
)

// DefaultCards returns the test cards a Server knows when Config.Cards is
// empty: CardSuccess, CardInsufficientFunds and CardPending.
func DefaultCards() map[string]Outcome {
	return map[string]Outcome{
		CardSuccess:           OutcomeHold,
		CardInsufficientFunds: OutcomeInsufficientFunds,
		CardPending:           OutcomePending,
	}
}
