package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	conveyor "github.com/conveyor-dev/conveyor"
)

// readBody reads the request body, capped by ServeHTTP's MaxBytesReader.
func (s *server) readBody(r *http.Request) ([]byte, error) {
	b, err := readAll(r.Body, r.ContentLength, s.maxBody)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, conveyor.Errorf(conveyor.ETooLarge, "request body is larger than %d bytes", tooBig.Limit)
	}
	if err != nil {
		return nil, conveyor.Errorf(conveyor.EInvalid, "cannot read the request body")
	}
	return b, nil
}

// readAll is io.ReadAll into a buffer of the body's announced size (when
// it is within max), so a body is read in one allocation instead of
// several growing copies.
func readAll(r io.Reader, size, max int64) ([]byte, error) {
	if size <= 0 || size > max {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, size+1) // +1: room to see the end without growing
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // announced size was wrong: grow as io.ReadAll does
		}
	}
}

// decode reads a JSON object into v: numbers stay exact (json.Number),
// unknown top-level keys and trailing data are refused, and so is nesting
// deeper than MaxDepth. An empty body leaves v as it is when optional.
func (s *server) decode(r *http.Request, v any, optional bool) error {
	b, err := s.readBody(r)
	if err != nil {
		return err
	}
	return s.decodeBytes(b, v, optional)
}

// decodeBytes is decode of a body already read.
func (s *server) decodeBytes(b []byte, v any, optional bool) error {
	if len(bytes.TrimSpace(b)) == 0 {
		if optional {
			return nil
		}
		return conveyor.Errorf(conveyor.EInvalid, "request body is empty: want a JSON object")
	}
	if err := checkDepth(b, s.maxDepth); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return conveyor.Errorf(conveyor.EInvalid, "request body: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return conveyor.Errorf(conveyor.EInvalid, "request body: data after the JSON object")
	}
	return nil
}

// checkDepth refuses JSON nested deeper than max objects and arrays. It
// counts brackets outside strings; malformed input is left to the decoder.
func checkDepth(b []byte, max int) error {
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return conveyor.Errorf(conveyor.EInvalid, "request body is nested deeper than %d levels", max)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// describeJSONError says what is wrong with a body for a person, without
// repeating values from it.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return "malformed JSON at byte " + strconv.FormatInt(syn.Offset, 10)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "want a JSON object, got " + typ.Value
		}
		return "field " + typ.Field + " must be " + jsonKind(typ.Type.Kind().String()) + ", got " + typ.Value
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "truncated JSON"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "string":
		return "a string"
	}
	return "a " + goKind
}
