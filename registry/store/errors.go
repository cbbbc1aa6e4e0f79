package store

import (
	"errors"
	"fmt"
)

// Sentinel errors of the store. Callers wrap and test them with errors.Is;
// the HTTP layer maps each to its OCI error code in one place.
var (
	ErrNameInvalid         = errors.New("invalid repository name")
	ErrNameUnknown         = errors.New("repository name not known to registry")
	ErrTagInvalid          = errors.New("invalid tag")
	ErrDigestInvalid       = errors.New("provided digest did not match uploaded content")
	ErrBlobUnknown         = errors.New("blob unknown to registry")
	ErrUploadUnknown       = errors.New("blob upload unknown to registry")
	ErrUploadInvalid       = errors.New("blob upload invalid")
	ErrRangeInvalid        = errors.New("requested range not satisfiable")
	ErrManifestUnknown     = errors.New("manifest unknown")
	ErrManifestInvalid     = errors.New("manifest invalid")
	ErrManifestBlobUnknown = errors.New("manifest references a blob unknown to the repository")
	ErrSizeInvalid         = errors.New("provided length did not match content length")
	ErrTooLarge            = errors.New("content too large")
	ErrUnsupported         = errors.New("the operation is unsupported")
)

// DetailError carries a detail value (a digest, a tag, a size) with a sentinel
// so the HTTP error body can name what was wrong.
type DetailError struct {
	Err    error
	Msg    string
	Detail any
}

func (e *DetailError) Error() string {
	if e.Msg != "" {
		return e.Err.Error() + ": " + e.Msg
	}
	return e.Err.Error()
}

func (e *DetailError) Unwrap() error { return e.Err }

func detailf(err error, detail any, format string, args ...any) error {
	return &DetailError{Err: err, Detail: detail, Msg: fmt.Sprintf(format, args...)}
}
