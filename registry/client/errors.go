package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode"
)

// Sentinel errors. Registry errors (*Error) match the first three with
// errors.Is; the others wrap errors found by the client itself.
var (
	// ErrNotFound: the repository, manifest, blob or upload does not exist
	// (HTTP 404 or a *_UNKNOWN / NOT_FOUND code).
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: authentication is required or the credentials were
	// rejected (HTTP 401 or UNAUTHORIZED).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrDenied: authenticated but not allowed (HTTP 403 or DENIED).
	ErrDenied = errors.New("denied")
	// ErrDigestMismatch: content does not match its digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrSizeMismatch: content is shorter or longer than its descriptor says.
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrTooLarge: content exceeds a limit (MaxManifestSize for manifests).
	ErrTooLarge = errors.New("too large")
	// ErrUnsupportedMediaType: a manifest of a media type the client does not
	// handle.
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrInvalidResponse: the registry answered something that is not the
	// distribution API (an HTML page, invalid JSON, missing headers).
	ErrInvalidResponse = errors.New("invalid response from registry")
)

// ErrorInfo is one entry of the OCI error body
// {"errors":[{"code":…,"message":…,"detail":…}]}.
type ErrorInfo struct {
	// Code is the OCI error code, e.g. "BLOB_UNKNOWN".
	Code string `json:"code"`
	// Message is the registry's human-readable message.
	Message string `json:"message"`
	// Detail is the unparsed detail value, when there is one.
	Detail json.RawMessage `json:"detail,omitempty"`
}

// Error is an error answered by a registry (or its token server). Use
// errors.As to get it and errors.Is with ErrNotFound, ErrUnauthorized or
// ErrDenied to classify it.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is the first OCI error code ("MANIFEST_UNKNOWN"), or "" when the
	// body had none.
	Code string
	// Message is the first error message, or a description of the body
	// (or the HTTP status text) when there was no OCI error JSON.
	Message string
	// Errors holds every entry of the OCI error body.
	Errors []ErrorInfo
	// Op says what the client was doing, e.g. "fetching manifest".
	Op string
	// Ref is the reference, repository or registry the request was about.
	Ref string
}

// Error formats as "<op> <ref>: <message> (<code>, HTTP <status>)".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteByte(' ')
	}
	b.WriteString(e.Ref)
	b.WriteString(": ")
	msg := e.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.StatusCode))
	}
	b.WriteString(msg)
	b.WriteString(" (")
	if e.Code != "" {
		b.WriteString(e.Code)
		b.WriteString(", ")
	}
	fmt.Fprintf(&b, "HTTP %d)", e.StatusCode)
	return b.String()
}

// Is reports whether e is of the kind of target (ErrNotFound,
// ErrUnauthorized, ErrDenied).
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		if e.StatusCode == http.StatusNotFound {
			return true
		}
		for _, c := range e.codes() {
			if c == "NOT_FOUND" || strings.HasSuffix(c, "_UNKNOWN") {
				return true
			}
		}
	case ErrUnauthorized:
		if e.StatusCode == http.StatusUnauthorized {
			return true
		}
		for _, c := range e.codes() {
			if c == "UNAUTHORIZED" {
				return true
			}
		}
	case ErrDenied:
		if e.StatusCode == http.StatusForbidden {
			return true
		}
		for _, c := range e.codes() {
			if c == "DENIED" {
				return true
			}
		}
	}
	return false
}

func (e *Error) codes() []string {
	out := []string{e.Code}
	for _, i := range e.Errors {
		out = append(out, i.Code)
	}
	return out
}

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 64 << 10

// responseError builds an *Error from a non-success response and closes
// its body.
func responseError(resp *http.Response, op, ref string) *Error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{StatusCode: resp.StatusCode, Op: op, Ref: ref}
	var oci struct {
		Errors  []ErrorInfo `json:"errors"`
		Error   string      `json:"error"`
		Message string      `json:"message"`
		Details string      `json:"details"`
	}
	if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &oci) == nil {
		if len(oci.Errors) > 0 {
			e.Errors = oci.Errors
			e.Code = oci.Errors[0].Code
			e.Message = oci.Errors[0].Message
			if e.Message == "" {
				e.Message = strings.ToLower(strings.ReplaceAll(e.Code, "_", " "))
			}
			return e
		}
		for _, m := range []string{oci.Message, oci.Error, oci.Details} {
			if m != "" {
				e.Message = sanitize(m, 300)
				return e
			}
		}
	}
	if d := describeBody(resp.Header.Get("Content-Type"), body); d != "" {
		e.Message = strings.ToLower(http.StatusText(resp.StatusCode)) + "; " + d
	}
	return e
}

// describeBody summarises a body that is not what the API should return,
// for error messages: "the registry returned an HTML page (text/html): <title>".
func describeBody(contentType string, body []byte) string {
	ct, _, _ := mime.ParseMediaType(contentType)
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		if ct == "" {
			return ""
		}
		return "empty body of type " + ct
	}
	if ct == "text/html" || looksLikeHTML(trimmed) {
		s := "the registry returned an HTML page"
		if ct != "" {
			s += " (" + ct + ")"
		}
		if t := htmlTitle(trimmed); t != "" {
			s += ": " + strconvQuote(t)
		}
		return s + ", not the distribution API; is the address right?"
	}
	if ct == "" {
		ct = "no content type"
	}
	return fmt.Sprintf("body of type %s: %s", ct, strconvQuote(sanitize(string(trimmed), 120)))
}

func looksLikeHTML(b []byte) bool {
	if len(b) == 0 || b[0] != '<' {
		return false
	}
	l := bytes.ToLower(b[:min(len(b), 512)])
	return bytes.HasPrefix(l, []byte("<!doctype html")) || bytes.Contains(l, []byte("<html")) ||
		bytes.Contains(l, []byte("<head")) || bytes.Contains(l, []byte("<body")) || bytes.Contains(l, []byte("<title"))
}

func htmlTitle(b []byte) string {
	l := bytes.ToLower(b)
	i := bytes.Index(l, []byte("<title"))
	if i < 0 {
		return ""
	}
	j := bytes.IndexByte(l[i:], '>')
	if j < 0 {
		return ""
	}
	start := i + j + 1
	end := bytes.Index(l[start:], []byte("</title"))
	if end < 0 {
		return ""
	}
	return sanitize(string(b[start:start+end]), 100)
}

// sanitize collapses whitespace, drops control characters and cuts s to n
// runes so that text from the network is safe to print.
func sanitize(s string, n int) string {
	var b strings.Builder
	space := false
	count := 0
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if !unicode.IsPrint(r) {
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
			count++
		}
		space = false
		if count >= n {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		count++
	}
	return b.String()
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }
