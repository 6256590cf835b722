package processes

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Field types of the input schema.
const (
	TypeString  = "string"
	TypeDecimal = "decimal" // exact: a JSON number or numeric string, never a float
	TypeInteger = "integer"
	TypeBoolean = "boolean"
	TypeObject  = "object"
	TypeArray   = "array"
)

// Sensitivity classes of input fields.
const (
	// SensitivePAN is a card number: encrypted at rest, masked (first 6, last
	// 4) wherever it is shown.
	SensitivePAN = "pan"
	// SensitiveSecret is a CVV or OTP: encrypted at rest, never shown, and
	// erased from the task once the node that used it has committed.
	SensitiveSecret = "secret"
)

// Field is one declared input field.
type Field struct {
	Name      string   `yaml:"-" json:"name"`
	Type      string   `yaml:"type" json:"type"`
	Required  bool     `yaml:"required,omitempty" json:"required,omitempty"`
	Enum      []string `yaml:"enum,omitempty" json:"enum,omitempty"`
	MinLength int      `yaml:"min_length,omitempty" json:"min_length,omitempty"`
	MaxLength int      `yaml:"max_length,omitempty" json:"max_length,omitempty"`
	Pattern   string   `yaml:"pattern,omitempty" json:"pattern,omitempty"`
	// Minimum and Maximum bound decimal and integer fields, compared exactly.
	Minimum     string `yaml:"minimum,omitempty" json:"minimum,omitempty"`
	Maximum     string `yaml:"maximum,omitempty" json:"maximum,omitempty"`
	Sensitive   string `yaml:"sensitive,omitempty" json:"sensitive,omitempty"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	Pos         Pos    `yaml:"-" json:"-"`

	re *regexp.Regexp
}

// Schema is a flow's input: the fields a submitted task's data may have.
// Fields not declared are refused, so a typo never silently drops a value.
type Schema struct {
	Fields []*Field
}

// Field returns the field called name, or nil.
func (s *Schema) Field(name string) *Field {
	for _, f := range s.Fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Sensitive returns the fields with a sensitivity class.
func (s *Schema) Sensitive() []*Field {
	var out []*Field
	for _, f := range s.Fields {
		if f.Sensitive != "" {
			out = append(out, f)
		}
	}
	return out
}

// FieldError is one input field that fails the schema.
type FieldError struct {
	Field string `json:"field"`
	Msg   string `json:"message"`
}

// InputError lists every field of a submitted task that fails the schema.
type InputError []FieldError

// Error joins the field errors.
func (e InputError) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		parts[i] = f.Field + ": " + f.Msg
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Validate checks data against the schema and returns an InputError listing
// every problem, or nil. Numbers must have been decoded as json.Number.
// Messages never repeat a sensitive field's value.
func (s *Schema) Validate(data map[string]any) error {
	var errs InputError
	for _, f := range s.Fields {
		v, ok := data[f.Name]
		if !ok || v == nil {
			if f.Required {
				errs = append(errs, FieldError{f.Name, "is required"})
			}
			continue
		}
		if msg := f.check(v); msg != "" {
			errs = append(errs, FieldError{f.Name, msg})
		}
	}
	var extra []string
	for k := range data {
		if s.Field(k) == nil {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		errs = append(errs, FieldError{k, "is not an input field of this process"})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

var decimalRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?$`)

// check returns what is wrong with one value, or "".
func (f *Field) check(v any) string {
	switch f.Type {
	case TypeString:
		s, ok := v.(string)
		if !ok {
			return "must be a string"
		}
		return f.checkString(s)
	case TypeDecimal:
		var s string
		switch x := v.(type) {
		case json.Number:
			s = string(x)
		case string:
			s = x
		default:
			return "must be a decimal number"
		}
		if !decimalRE.MatchString(s) {
			return "must be a decimal number such as 5 or 7.34"
		}
		if len(f.Enum) > 0 && !slices.Contains(f.Enum, s) {
			return "must be one of " + strings.Join(f.Enum, ", ")
		}
		return f.checkRange(s)
	case TypeInteger:
		n, ok := v.(json.Number)
		if !ok {
			return "must be an integer"
		}
		if _, ok := new(big.Int).SetString(string(n), 10); !ok {
			return "must be an integer"
		}
		return f.checkRange(string(n))
	case TypeBoolean:
		if _, ok := v.(bool); !ok {
			return "must be true or false"
		}
	case TypeObject:
		if _, ok := v.(map[string]any); !ok {
			return "must be an object"
		}
	case TypeArray:
		if _, ok := v.([]any); !ok {
			return "must be an array"
		}
	}
	return ""
}

func (f *Field) checkString(s string) string {
	n := utf8.RuneCountInString(s)
	if f.MinLength > 0 && n < f.MinLength {
		return fmt.Sprintf("must be at least %d characters", f.MinLength)
	}
	if f.MaxLength > 0 && n > f.MaxLength {
		return fmt.Sprintf("must be at most %d characters", f.MaxLength)
	}
	if len(f.Enum) > 0 && !slices.Contains(f.Enum, s) {
		return "must be one of " + strings.Join(f.Enum, ", ")
	}
	if f.re != nil && !f.re.MatchString(s) {
		if f.Sensitive != "" {
			return "has the wrong format"
		}
		return "must match " + f.Pattern
	}
	if f.Sensitive == SensitivePAN && !luhn(s) {
		return "is not a valid card number"
	}
	return ""
}

// luhn reports whether s is 12 to 19 digits with a valid Luhn check digit.
func luhn(s string) bool {
	if len(s) < 12 || len(s) > 19 {
		return false
	}
	sum := 0
	for i := range len(s) {
		c := s[len(s)-1-i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// ValidateKnown checks only the declared fields of data and lets others pass:
// for bodies that others send (callbacks), where extra fields are normal.
// Fields that are absent are not checked (not even required ones).
func (s *Schema) ValidateKnown(data map[string]any) error {
	var errs InputError
	for _, f := range s.Fields {
		v, ok := data[f.Name]
		if !ok {
			continue
		}
		if v == nil {
			if f.Required {
				errs = append(errs, FieldError{f.Name, "is required"})
			}
			continue
		}
		if msg := f.check(v); msg != "" {
			errs = append(errs, FieldError{f.Name, msg})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// checkRange compares a numeric value with the field's bounds, exactly.
func (f *Field) checkRange(s string) string {
	v, ok := new(big.Rat).SetString(s)
	if !ok {
		return ""
	}
	if lo, ok := new(big.Rat).SetString(f.Minimum); f.Minimum != "" && ok && v.Cmp(lo) < 0 {
		return "must be at least " + f.Minimum
	}
	if hi, ok := new(big.Rat).SetString(f.Maximum); f.Maximum != "" && ok && v.Cmp(hi) > 0 {
		return "must be at most " + f.Maximum
	}
	return ""
}
