// Package registry serves the OCI Distribution Spec v1.1 HTTP API (with
// Docker's registry v2 behaviour) over a store.Store.
package registry

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
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
	var allow []string
	for _, e := range endpoints[rt.kind] {
		if e.method == r.Method {
			e.serve(h, w, r, rt)
			return
		}
		allow = append(allow, e.method)
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	h.writeError(w, r, errMethod)
}

// serveFunc answers one method of one endpoint.
type serveFunc func(h *handler, w http.ResponseWriter, r *http.Request, rt route)

// endpoints maps each endpoint to the methods it serves; anything else is a
// 405 whose Allow header lists them.
var endpoints = map[routeKind][]struct {
	method string
	serve  serveFunc
}{
	routeBase:        {{http.MethodGet, (*handler).ping}, {http.MethodHead, (*handler).ping}},
	routeCatalog:     {{http.MethodGet, (*handler).catalog}},
	routeTags:        {{http.MethodGet, (*handler).tags}},
	routeReferrers:   {{http.MethodGet, (*handler).referrers}},
	routeManifest:    {{http.MethodGet, (*handler).getManifest}, {http.MethodHead, (*handler).getManifest}, {http.MethodPut, (*handler).putManifest}, {http.MethodDelete, (*handler).deleteManifest}},
	routeBlob:        {{http.MethodGet, (*handler).getBlob}, {http.MethodHead, (*handler).getBlob}, {http.MethodDelete, (*handler).deleteBlob}},
	routeUploadStart: {{http.MethodPost, (*handler).startUpload}},
	routeUpload:      {{http.MethodGet, (*handler).uploadStatus}, {http.MethodPatch, (*handler).patchUpload}, {http.MethodPut, (*handler).putUpload}, {http.MethodDelete, (*handler).cancelUpload}},
}

// ping answers /v2/: the API is there (an empty JSON object).
func (h *handler) ping(w http.ResponseWriter, r *http.Request, _ route) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("{}"))
	}
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
