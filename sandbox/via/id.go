package via

import (
	"crypto/rand"
	"encoding/binary"
	"math/big"
	"time"
)

// base62 is KSUID's alphabet: digits, then upper case, then lower case.
const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// ksuidEpoch is KSUID's epoch (2014-05-13T16:53:20Z) in Unix seconds.
const ksuidEpoch = 1_400_000_000

// idLength is the length of the base62 part of a VIA id.
const idLength = 27

// HoldIDPrefix starts every hold id, as in VIA's example
// phl_2RW4uL2eTpbCqyUjw9mZEOUgVYY (holds.md §2.1).
const HoldIDPrefix = "phl_"

// newID returns prefix plus a KSUID-shaped 27-character base62 string: a
// 4-byte timestamp of now and 16 random bytes, so ids sort by creation time
// as VIA's appear to.
func newID(prefix string, now time.Time) string {
	var raw [20]byte
	binary.BigEndian.PutUint32(raw[:4], ksuidSeconds(now))
	_, _ = rand.Read(raw[4:]) // crypto/rand.Read never fails (Go 1.24+)
	n := new(big.Int).SetBytes(raw[:])
	out := make([]byte, idLength)
	radix, digit := big.NewInt(62), new(big.Int)
	for i := idLength - 1; i >= 0; i-- {
		n.DivMod(n, radix, digit)
		out[i] = base62[digit.Int64()]
	}
	return prefix + string(out)
}

// ksuidSeconds is now in KSUID's 32-bit timestamp, clamped to its range.
func ksuidSeconds(now time.Time) uint32 {
	s := now.Unix() - ksuidEpoch
	switch {
	case s < 0:
		return 0
	case s > 1<<32-1:
		return 1<<32 - 1
	}
	return uint32(s)
}
