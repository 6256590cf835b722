package bench

import (
	"strings"
	"testing"
)

func round(seed, ceiling float64) seedRound {
	sr := seedRound{res: &loadResult{rate: seed}}
	if ceiling > 0 {
		sr.ceiling = &ceilingResult{res: &loadResult{rate: ceiling}}
	}
	return sr
}

// The table shows the round whose share is the median, not the round with
// the median seed rate: a slow window on both sides is a fair round.
func TestMedian_picksTheMedianShare(t *testing.T) {
	rounds := []seedRound{round(1000, 4000), round(1800, 3600), round(1500, 3500)} // 25 %, 50 %, 43 %
	if got := median(rounds); got.res.rate != 1500 {
		t.Errorf("median round has seed rate %v, want 1500 (share 43 %%)", got.res.rate)
	}
	if got := median(rounds[:2]); got.res.rate != 1000 {
		t.Errorf("of two rounds the lower share is shown, got seed rate %v", got.res.rate)
	}
	if got := median(rounds[:1]); got.res.rate != 1000 {
		t.Errorf("one round is its own median, got %v", got.res.rate)
	}
}

func TestMedian_withoutCeilingPicksTheMedianRate(t *testing.T) {
	rounds := []seedRound{round(900, 0), round(2000, 0), round(1200, 0)}
	if got := median(rounds); got.res.rate != 1200 {
		t.Errorf("median round has seed rate %v, want 1200", got.res.rate)
	}
}

func TestRoundsText_listsRoundsInRunOrder(t *testing.T) {
	got := roundsText([]seedRound{round(1000, 4000), round(1800, 3600)})
	want := "2 rounds, seed / ceiling flows/s (share), each ceiling window right after its seed window: 1,000 / 4,000 flows/s (25 %), 1,800 / 3,600 flows/s (50 %)"
	if got != want {
		t.Errorf("roundsText =\n%s\nwant\n%s", got, want)
	}
	if got := roundsText([]seedRound{round(1000, 0)}); !strings.HasSuffix(got, ": 1,000 flows/s") {
		t.Errorf("without a ceiling: %s", got)
	}
	limited := round(1000, 2000)
	limited.ceiling.limit = &loadResult{rate: 4000}
	if got := roundsText([]seedRound{limited}); !strings.HasSuffix(got, ": 1,000 / 2,000 flows/s (50 %; bare provider 4,000, 25 %)") {
		t.Errorf("with the bare provider's limit: %s", got)
	}
}
