package network

import "errors"

// Sentinel errors; every error of the package that is one of these kinds wraps it (use
// errors.Is), with Docker's wording as its message.
var (
	// ErrNotFound: no such network or endpoint.
	ErrNotFound = errors.New("not found")
	// ErrInUse: a network still has active endpoints.
	ErrInUse = errors.New("in use")
	// ErrConflict: a name taken, overlapping subnets, an address in use.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: bad input (addresses, names, drivers, options) or an operation the
	// network does not allow (removing a pre-defined network).
	ErrInvalid = errors.New("invalid argument")
)

// kindError is an error with its own message that is also one of the sentinels.
type kindError struct {
	msg  string
	kind error
	err  error // optional cause
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Unwrap() []error {
	if e.err != nil {
		return []error{e.kind, e.err}
	}
	return []error{e.kind}
}

func newError(kind error, msg string) error { return &kindError{msg: msg, kind: kind} }
