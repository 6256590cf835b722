package engine

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/processes"
)

// sealPrefix marks an encrypted field value in stored task data.
const sealPrefix = "enc:v1:"

// Masks shown in place of sensitive values.
const (
	maskSecret = "***"
)

// sealer encrypts sensitive fields with AES-256-GCM. The nonce is random and
// the task id and field name are bound as additional data, so a sealed value
// cannot be moved to another task or field.
type sealer struct {
	aead cipher.AEAD
	mac  []byte
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("engine: data key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	mk := sha256.Sum256(append([]byte("conveyor-mac:"), key...))
	return &sealer{aead: aead, mac: mk[:]}, nil
}

func (s *sealer) seal(id uuid.UUID, field, plain string) string {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := s.aead.Seal(nonce, nonce, []byte(plain), []byte(id.String()+"/"+field))
	return sealPrefix + base64.RawStdEncoding.EncodeToString(out)
}

func (s *sealer) open(id uuid.UUID, field, sealed string) (string, error) {
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(sealed, sealPrefix))
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", errors.New("sealed value is corrupt")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(id.String()+"/"+field))
	if err != nil {
		return "", errors.New("sealed value does not open with this key")
	}
	return string(plain), nil
}

// digest is a keyed hash (HMAC-SHA256), for input hashes that may cover card
// data: an unkeyed hash of a card number could be reversed by brute force.
func (s *sealer) digest(b []byte) string {
	m := hmac.New(sha256.New, s.mac)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

// sealFields encrypts every sensitive input field present in data.
func (s *sealer) sealFields(id uuid.UUID, schema *processes.Schema, data map[string]any) {
	for _, f := range schema.Sensitive() {
		if v, ok := data[f.Name].(string); ok && !strings.HasPrefix(v, sealPrefix) {
			data[f.Name] = s.seal(id, f.Name, v)
		}
	}
}

// openFields decrypts the named fields in data, for a node that uses them.
func (s *sealer) openFields(id uuid.UUID, names []string, data map[string]any) error {
	for _, name := range names {
		v, ok := data[name].(string)
		if !ok || !strings.HasPrefix(v, sealPrefix) {
			continue
		}
		plain, err := s.open(id, name, v)
		if err != nil {
			return fmt.Errorf("field %s: %w", name, err)
		}
		data[name] = plain
	}
	return nil
}

// mask replaces sensitive fields with what may be shown: a card number as
// its first six and last four digits, a secret as ***.
func (s *sealer) mask(id uuid.UUID, schema *processes.Schema, data map[string]any) {
	for _, f := range schema.Sensitive() {
		v, ok := data[f.Name].(string)
		if !ok {
			continue
		}
		if f.Sensitive != processes.SensitivePAN {
			data[f.Name] = maskSecret
			continue
		}
		plain := v
		if strings.HasPrefix(v, sealPrefix) {
			p, err := s.open(id, f.Name, v)
			if err != nil {
				data[f.Name] = maskSecret
				continue
			}
			plain = p
		}
		data[f.Name] = MaskPAN(plain)
	}
}

// MaskPAN shows a card number as its first six and last four digits.
func MaskPAN(pan string) string {
	if len(pan) < 12 {
		return maskSecret
	}
	return pan[:6] + strings.Repeat("*", len(pan)-10) + pan[len(pan)-4:]
}

// NewKey returns a fresh random 32-byte data key.
func NewKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}
