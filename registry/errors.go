package registry

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/berth-registry/berth/registry/store"
)

// ociError is one entry of the OCI error body.
type ociError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// errRoute is returned for paths that name no API endpoint.
var errRoute = errors.New("unknown API endpoint")

// errPagination is returned for a bad n parameter.
var errPagination = errors.New("invalid number of results requested")

// errMethod is returned for a method the endpoint does not serve.
var errMethod = errors.New("method not allowed")

// errorMapping is the one place where errors become HTTP statuses and OCI codes.
var errorMapping = []struct {
	err    error
	status int
	code   string
}{
	{store.ErrNameInvalid, http.StatusBadRequest, "NAME_INVALID"},
	{store.ErrNameUnknown, http.StatusNotFound, "NAME_UNKNOWN"},
	{store.ErrTagInvalid, http.StatusBadRequest, "TAG_INVALID"},
	{store.ErrDigestInvalid, http.StatusBadRequest, "DIGEST_INVALID"},
	{store.ErrBlobUnknown, http.StatusNotFound, "BLOB_UNKNOWN"},
	{store.ErrUploadUnknown, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
	{store.ErrUploadInvalid, http.StatusBadRequest, "BLOB_UPLOAD_INVALID"},
	{store.ErrRangeInvalid, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID"},
	{store.ErrManifestUnknown, http.StatusNotFound, "MANIFEST_UNKNOWN"},
	{store.ErrManifestInvalid, http.StatusBadRequest, "MANIFEST_INVALID"},
	{store.ErrManifestBlobUnknown, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN"},
	{store.ErrSizeInvalid, http.StatusBadRequest, "SIZE_INVALID"},
	{store.ErrTooLarge, http.StatusRequestEntityTooLarge, "SIZE_INVALID"},
	{store.ErrUnsupported, http.StatusMethodNotAllowed, "UNSUPPORTED"},
	{errRoute, http.StatusNotFound, "NOT_FOUND"},
	{errMethod, http.StatusMethodNotAllowed, "UNSUPPORTED"},
	{errPagination, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID"},
	{errRangeHeader, http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID"},
}

// writeError answers with the OCI error JSON for err.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := http.StatusInternalServerError, "UNKNOWN"
	for _, m := range errorMapping {
		if errors.Is(err, m.err) {
			status, code = m.status, m.code
			break
		}
	}
	msg := err.Error()
	var detail any
	var de *store.DetailError
	if errors.As(err, &de) {
		detail = de.Detail
	}
	if status == http.StatusInternalServerError {
		if errors.Is(err, context.Canceled) {
			status = 499 // client went away; nobody reads the answer
		}
		// The cause (backend addresses, keys) goes to the log, not to the client.
		h.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		msg, detail = "internal error; the registry's log has the cause", nil
		if status == http.StatusInternalServerError && isUnavailable(err) {
			status, code, msg = http.StatusServiceUnavailable, "UNAVAILABLE", "storage backend unavailable; retry later"
		}
	}
	body, _ := json.Marshal(struct {
		Errors []ociError `json:"errors"`
	}{[]ociError{{Code: code, Message: msg, Detail: detail}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", itoa(int64(len(body))))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// isUnavailable tells a backend that cannot be reached (connection refused,
// timeouts) from other internal errors, so clients see a retryable 503.
func isUnavailable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, context.DeadlineExceeded)
}
