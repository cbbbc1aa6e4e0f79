// Package registry serves the OCI Distribution Spec v1.1 HTTP API (with
// Docker's registry v2 behaviour) over a store.Store.
package registry

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/berth-registry/berth/registry/store"
	"github.com/gorilla/mux"
)

// Options configure the HTTP API.
type Options struct {
	// Logger receives access logs and errors; nil means slog.Default().
	Logger *slog.Logger
	// AccessLogDisabled turns off the per-request log line.
	AccessLogDisabled bool
}

type handler struct {
	st   *store.Store
	opts Options
	log  *slog.Logger
}

// New returns the registry's HTTP handler: /v2/... and /healthz.
func New(st *store.Store, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &handler{st: st, opts: opts, log: opts.Logger}
	// SkipClean: a path with ".." is refused with NAME_INVALID, never
	// redirected to its cleaned form.
	r := mux.NewRouter().SkipClean(true)
	r.HandleFunc("/healthz", h.healthz).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/v2").Handler(http.HandlerFunc(h.serveAPI))
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { h.writeError(w, req, errRoute) })
	if opts.AccessLogDisabled {
		return r
	}
	return h.accessLog(r)
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	if _, err := h.st.Driver().Stat(r.Context(), "/"); err != nil {
		http.Error(w, "storage unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ok\n"))
}

// serveAPI dispatches /v2/ requests on the parsed route and method.
func (h *handler) serveAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt, err := parseRoute(r.URL.Path)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	m := r.Method
	switch rt.kind {
	case routeBase:
		if m == http.MethodGet || m == http.MethodHead {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "2")
			if m == http.MethodGet {
				_, _ = w.Write([]byte("{}"))
			}
			return
		}
	case routeCatalog:
		if m == http.MethodGet {
			h.catalog(w, r)
			return
		}
	case routeTags:
		if m == http.MethodGet {
			h.tags(w, r, rt)
			return
		}
	case routeReferrers:
		if m == http.MethodGet {
			h.referrers(w, r, rt)
			return
		}
	case routeManifest:
		switch m {
		case http.MethodGet, http.MethodHead:
			h.getManifest(w, r, rt)
			return
		case http.MethodPut:
			h.putManifest(w, r, rt)
			return
		case http.MethodDelete:
			h.deleteManifest(w, r, rt)
			return
		}
	case routeBlob:
		switch m {
		case http.MethodGet, http.MethodHead:
			h.getBlob(w, r, rt)
			return
		case http.MethodDelete:
			h.deleteBlob(w, r, rt)
			return
		}
	case routeUploadStart:
		if m == http.MethodPost {
			h.startUpload(w, r, rt)
			return
		}
	case routeUpload:
		switch m {
		case http.MethodGet:
			h.uploadStatus(w, r, rt)
			return
		case http.MethodPatch:
			h.patchUpload(w, r, rt)
			return
		case http.MethodPut:
			h.putUpload(w, r, rt)
			return
		case http.MethodDelete:
			h.cancelUpload(w, r, rt)
			return
		}
	}
	w.Header().Set("Allow", allowed[rt.kind])
	h.writeError(w, r, errMethod)
}

// allowed lists the methods each endpoint serves, for 405 answers.
var allowed = map[routeKind]string{
	routeBase:        "GET, HEAD",
	routeCatalog:     "GET",
	routeTags:        "GET",
	routeReferrers:   "GET",
	routeManifest:    "GET, HEAD, PUT, DELETE",
	routeBlob:        "GET, HEAD, DELETE",
	routeUploadStart: "POST",
	routeUpload:      "GET, PATCH, PUT, DELETE",
}

// statusRecorder captures what a handler answered, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController and io.Copy's sendfile path reach the
// underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (h *handler) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)), slog.String("remote", r.RemoteAddr))
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// ReadFrom keeps the server's sendfile path for blob bodies.
func (s *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := io.Copy(s.ResponseWriter, src)
	s.bytes += n
	return n, err
}
