package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for Options.
const (
	// DefaultMaxRetries is used when Options.MaxRetries is 0.
	DefaultMaxRetries = 3
	// DefaultChunkSize is used when Options.ChunkSize is 0.
	DefaultChunkSize = 16 << 20
	// DefaultUserAgent is used when Options.UserAgent is empty.
	DefaultUserAgent = "berth-client/1.0"
)

// Options configure a Client. The zero value is usable: anonymous access,
// HTTPS except for loopback registries, http.DefaultTransport settings.
type Options struct {
	// Credentials supplies user names and secrets per registry; nil means
	// anonymous access only.
	Credentials CredentialStore
	// Insecure lists registries that may be reached over plain HTTP, as
	// "host" (any port), "host:port", or a CIDR ("10.0.0.0/8") matched
	// against IP-address registries. Loopback registries (localhost,
	// 127.0.0.0/8, ::1) always use plain HTTP.
	Insecure []string
	// Transport carries the requests; nil means a clone of
	// http.DefaultTransport with more idle connections per host.
	Transport http.RoundTripper
	// UserAgent is sent with every request; empty means DefaultUserAgent.
	UserAgent string
	// MaxRetries bounds the retries of one request after connection errors,
	// 429, 502, 503 and 504; 0 means DefaultMaxRetries, negative means none.
	// It also bounds how often FetchBlob's reader resumes a broken download
	// and how often PushBlob resumes a failed chunk.
	MaxRetries int
	// Logger receives debug messages about retries and authentication; nil
	// means slog.Default().
	Logger *slog.Logger
	// ChunkSize is the size of PATCH chunks when pushing blobs; blobs of at
	// most this size are pushed with one monolithic PUT. 0 means
	// DefaultChunkSize.
	ChunkSize int64
}

// Client talks to OCI distribution registries. It is safe for concurrent use;
// tokens and learned authentication schemes are shared by all requests.
type Client struct {
	opts       Options
	hc         *http.Client
	log        *slog.Logger
	maxRetries int
	chunkSize  int64
	insecure   []insecureRule

	// Backoff parameters; tests shorten them.
	baseDelay     time.Duration
	maxDelay      time.Duration
	maxRetryAfter time.Duration
	now           func() time.Time

	mu     sync.Mutex
	hosts  map[string]*hostAuth
	tokens map[string]*tokenEntry
}

// New returns a Client configured by opts.
func New(opts Options) *Client {
	c := &Client{
		opts:          opts,
		log:           opts.Logger,
		maxRetries:    opts.MaxRetries,
		chunkSize:     opts.ChunkSize,
		baseDelay:     250 * time.Millisecond,
		maxDelay:      10 * time.Second,
		maxRetryAfter: 60 * time.Second,
		now:           time.Now,
		hosts:         make(map[string]*hostAuth),
		tokens:        make(map[string]*tokenEntry),
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.maxRetries == 0 {
		c.maxRetries = DefaultMaxRetries
	} else if c.maxRetries < 0 {
		c.maxRetries = 0
	}
	if c.chunkSize <= 0 {
		c.chunkSize = DefaultChunkSize
	}
	if c.opts.UserAgent == "" {
		c.opts.UserAgent = DefaultUserAgent
	}
	tr := opts.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 32
		tr = t
	}
	c.hc = &http.Client{Transport: tr, CheckRedirect: checkRedirect}
	for _, e := range opts.Insecure {
		if r, ok := parseInsecure(e); ok {
			c.insecure = append(c.insecure, r)
		}
	}
	return c
}

// errRedirect marks redirect policy errors, which are not retried.
type errRedirect struct{ msg string }

func (e *errRedirect) Error() string { return e.msg }

// checkRedirect follows up to 10 redirects and never forwards the
// Authorization header to another host (port included): a registry
// redirecting blob reads to object storage must not leak its token there.
// net/http would keep it for the same host name on another port and for
// subdomains.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return &errRedirect{"stopped after 10 redirects"}
	}
	if !strings.EqualFold(req.URL.Host, via[0].URL.Host) || req.URL.Scheme != via[0].URL.Scheme {
		req.Header.Del("Authorization")
	}
	return nil
}

// insecureRule is one parsed Options.Insecure entry.
type insecureRule struct {
	host string     // host or host:port, lower case
	cidr *net.IPNet // or a network
}

func parseInsecure(e string) (insecureRule, bool) {
	e = strings.TrimSpace(strings.ToLower(e))
	if i := strings.Index(e, "://"); i >= 0 {
		e = e[i+3:]
	}
	e = strings.TrimSuffix(e, "/")
	if e == "" {
		return insecureRule{}, false
	}
	if _, n, err := net.ParseCIDR(e); err == nil {
		return insecureRule{cidr: n}, true
	}
	return insecureRule{host: e}, true
}

// splitHostPort splits "host", "host:port", "[::1]:5000" or "::1".
func splitHostPort(s string) (host, port string) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		return h, p
	}
	return strings.Trim(s, "[]"), ""
}

// PlainHTTP reports whether the client talks to registry over plain HTTP:
// loopback hosts (localhost, *.localhost, 127.0.0.0/8, ::1) and registries
// matching Options.Insecure. Everything else uses HTTPS.
func (c *Client) PlainHTTP(registry string) bool {
	registry = strings.ToLower(registry)
	if registry == DockerHub {
		return false
	}
	host, _ := splitHostPort(registry)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	if ip != nil && ip.IsLoopback() {
		return true
	}
	for _, r := range c.insecure {
		switch {
		case r.cidr != nil:
			if ip != nil && r.cidr.Contains(ip) {
				return true
			}
		case r.host == registry:
			return true
		default:
			if h, p := splitHostPort(r.host); p == "" && h == host {
				return true
			}
		}
	}
	return false
}

// baseURL is the scheme and API host of registry.
func (c *Client) baseURL(registry string) *url.URL {
	scheme := "https"
	if c.PlainHTTP(registry) {
		scheme = "http"
	}
	return &url.URL{Scheme: scheme, Host: apiHost(registry)}
}

// request describes one API call.
type request struct {
	method   string
	registry string
	// target is a path ("/v2/…", possibly with a query) on the registry, or
	// an absolute URL (upload Locations, Link headers).
	target string
	header http.Header
	// body is sent when non-nil; it is replayable, so retries and
	// authentication retries can resend it.
	body []byte
	// scopes are the token scopes the request needs.
	scopes []string
	// op and ref name the request in errors.
	op, ref string
}

// url resolves the request's target.
func (c *Client) url(r *request) (*url.URL, error) {
	u, err := c.baseURL(r.registry).Parse(r.target)
	if err != nil {
		return nil, fmt.Errorf("%s %s: bad URL %q: %w", r.op, r.ref, r.target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s %s: %w: URL %q is not http(s)", r.op, r.ref, ErrInvalidResponse, r.target)
	}
	return u, nil
}

// do sends r with authentication and retries and returns the response,
// whatever its status. A 401 with a challenge is answered (token fetched
// or Basic credentials attached) and the request sent once more.
func (c *Client) do(ctx context.Context, r *request) (*http.Response, error) {
	u, err := c.url(r)
	if err != nil {
		return nil, err
	}
	sameHost := strings.EqualFold(u.Host, apiHost(r.registry))
	for authTry := 0; ; authTry++ {
		var sentAuth string
		build := func() (*http.Request, error) {
			var body io.Reader
			if r.body != nil {
				body = bytes.NewReader(r.body)
			}
			req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", r.op, r.ref, err)
			}
			for k, v := range r.header {
				req.Header[k] = append([]string(nil), v...)
			}
			req.Header.Set("User-Agent", c.opts.UserAgent)
			if sameHost {
				if err := c.authorize(ctx, req, r.registry, r.scopes); err != nil {
					return nil, fmt.Errorf("%s %s: %w", r.op, r.ref, err)
				}
			}
			sentAuth = req.Header.Get("Authorization")
			return req, nil
		}
		resp, err := c.send(ctx, build)
		if err != nil {
			var re *Error
			if errors.As(err, &re) || errors.Is(err, ErrUnauthorized) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil, err
			}
			return nil, fmt.Errorf("%s %s: %w", r.op, r.ref, err)
		}
		if resp.StatusCode != http.StatusUnauthorized || authTry > 0 || !sameHost {
			return resp, nil
		}
		chs := ParseChallenges(resp.Header.Values("WWW-Authenticate"))
		scopes, aerr := c.handleChallenge(r.registry, chs, r.scopes, sentAuth)
		if aerr != nil {
			e := responseError(resp, r.op, r.ref)
			e.Message += "; " + aerr.Error()
			return nil, e
		}
		drain(resp)
		r.scopes = scopes
	}
}

// send performs the request built by build, retrying connection errors,
// 429, 502, 503 and 504 with exponential backoff and jitter (429 and 503
// honour Retry-After), at most c.maxRetries times and only when the request
// body can be replayed.
func (c *Client) send(ctx context.Context, build func() (*http.Request, error)) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := build()
		if err != nil {
			return nil, err
		}
		resp, err := c.hc.Do(req)
		canRetry := attempt < c.maxRetries && replayable(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !canRetry || !retryableError(err) {
				return nil, err
			}
			wait := c.backoff(attempt)
			c.log.Debug("registry request failed, retrying", "method", req.Method, "url", redactURL(req.URL), "err", err, "wait", wait)
			if err := sleep(ctx, wait); err != nil {
				return nil, err
			}
			continue
		}
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			if !canRetry {
				return resp, nil
			}
			wait := c.backoff(attempt)
			if ra, ok := retryAfter(resp.Header.Get("Retry-After"), c.now()); ok {
				if ra > c.maxRetryAfter {
					return resp, nil
				}
				wait = ra
			}
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				return resp, nil
			}
			c.log.Debug("registry busy, retrying", "method", req.Method, "url", redactURL(req.URL), "status", resp.StatusCode, "wait", wait)
			drain(resp)
			if err := sleep(ctx, wait); err != nil {
				return nil, err
			}
			continue
		}
		return resp, nil
	}
}

// replayable reports whether req can be sent again: no body, or a body
// that GetBody can recreate.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// retryableError reports whether a transport error may go away on retry.
// Certificate problems, HTTPS to an HTTP server and redirect policy errors
// do not.
func retryableError(err error) bool {
	var (
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		certInvalid x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
		recordErr   tls.RecordHeaderError
		redirectErr *errRedirect
	)
	switch {
	case errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &certInvalid),
		errors.As(err, &verifyErr), errors.As(err, &recordErr), errors.As(err, &redirectErr):
		return false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	return true
}

// backoff returns the wait before retry number attempt+1: base·2^attempt
// capped at maxDelay, with jitter in [d/2, d].
func (c *Client) backoff(attempt int) time.Duration {
	d := c.baseDelay << min(attempt, 20)
	if d > c.maxDelay || d <= 0 {
		d = c.maxDelay
	}
	half := d / 2
	return half + rand.N(half+1)
}

// retryAfter parses a Retry-After header (seconds or HTTP date).
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(h); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain reads a little of an unwanted body so the connection can be reused,
// and closes it.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}

// redactURL drops query strings (presigned URLs carry credentials) for logs.
func redactURL(u *url.URL) string {
	v := *u
	if v.RawQuery != "" {
		v.RawQuery = "…"
	}
	v.User = nil
	return v.String()
}

// repoScope is the token scope for actions on a repository.
func repoScope(repo string, push bool) string {
	if push {
		return "repository:" + repo + ":pull,push"
	}
	return "repository:" + repo + ":pull"
}

// expectStatus returns an *Error for resp unless its status is one of ok;
// on error the body is closed.
func expectStatus(resp *http.Response, op, ref string, ok ...int) error {
	for _, s := range ok {
		if resp.StatusCode == s {
			return nil
		}
	}
	return responseError(resp, op, ref)
}
