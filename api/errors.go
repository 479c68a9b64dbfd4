package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DocumentError is one problem with one document of an input, or with one field of a
// resource. Decode and Validate return their errors as DocumentErrors joined with
// errors.Join; DocumentErrors flattens such an error back into a slice.
//
// Its Error text is one line, the non-empty parts joined by ": ":
//
//	reviews.yaml: document 2: VirtualService default/reviews: spec.http[0].route[1].weight: must not be negative, got -1
type DocumentError struct {
	// Source names the input ("reviews.yaml", "stdin"); empty for Validate's errors.
	Source string
	// Document is the 1-based position of the document among the non-empty documents
	// of the input; 0 for Validate's errors.
	Document int
	// Item is the 0-based index of the resource in a `kind: List` document's items,
	// or -1 when the document is not a List.
	Item int
	// Line is the line of the input where the document starts, 0 when unknown (JSON).
	Line int
	// Resource is "Kind namespace/name", empty when the document is not (yet) known
	// to be a resource.
	Resource string
	// Field is the path of the offending field, e.g. "spec.http[0].route[1].weight";
	// empty when the problem is with the document as a whole.
	Field string
	// Reason says what is wrong and, where there is one, shows the offending value.
	Reason string
}

// Error returns the one-line description of the problem.
func (e *DocumentError) Error() string {
	var b strings.Builder
	add := func(s string) {
		if s == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(s)
	}
	add(e.Source)
	if e.Document > 0 {
		add("document " + strconv.Itoa(e.Document))
	}
	if e.Item >= 0 {
		add("items[" + strconv.Itoa(e.Item) + "]")
	}
	add(e.Resource)
	add(e.Field)
	add(e.Reason)
	return b.String()
}

// DocumentErrors returns every *DocumentError in err, which may be a single
// *DocumentError or any tree of errors.Join. Errors of other types are left out.
func DocumentErrors(err error) []*DocumentError {
	if err == nil {
		return nil
	}
	if de, ok := err.(*DocumentError); ok {
		return []*DocumentError{de}
	}
	var out []*DocumentError
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = append(out, DocumentErrors(e)...)
		}
	case interface{ Unwrap() error }:
		out = DocumentErrors(u.Unwrap())
	}
	return out
}

// problems collects the errors found in one document or resource.
type problems struct {
	errs []*DocumentError
}

// add records a problem with the field at path.
func (p *problems) add(path, format string, args ...any) {
	p.errs = append(p.errs, &DocumentError{Item: -1, Field: path, Reason: fmt.Sprintf(format, args...)})
}

// count is the number of problems recorded so far.
func (p *problems) count() int { return len(p.errs) }

// join stamps every problem with resource and returns them as one error, nil if none.
func (p *problems) join(resource string) error {
	if len(p.errs) == 0 {
		return nil
	}
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		e.Resource = resource
		errs[i] = e
	}
	return errors.Join(errs...)
}

// Field paths. Paths use the JSON (camelCase) names of fields, list indexes in
// brackets and map keys in brackets: spec.http[0].match[1].headers[x-user].

func field(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func mapKey(path, key string) string {
	plain := key != ""
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:@", c)) {
			plain = false
			break
		}
	}
	if plain {
		return path + "[" + key + "]"
	}
	return path + "[" + strconv.Quote(key) + "]"
}
