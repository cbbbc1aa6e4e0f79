package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Challenge is one authentication challenge of a WWW-Authenticate header.
type Challenge struct {
	// Scheme is the lower-case scheme: "basic", "bearer", …
	Scheme string
	// Params holds the auth-params with lower-case keys and unquoted
	// values: realm, service, scope, error, …
	Params map[string]string
}

// ParseChallenges parses WWW-Authenticate header values (RFC 9110 §11.6.1):
// several challenges per value, comma-separated auth-params, values as
// tokens or quoted strings which may contain commas and backslash escapes:
//
//	Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"
//
// Malformed parts are skipped; it never fails.
func ParseChallenges(headers []string) []Challenge {
	var out []Challenge
	for _, h := range headers {
		cur := -1
		i := 0
		for i < len(h) {
			i = skipChars(h, i, " \t,")
			if i >= len(h) {
				break
			}
			tok, j := readToken(h, i)
			if tok == "" {
				i++ // a character that cannot start anything; skip it
				continue
			}
			k := skipChars(h, j, " \t")
			if k < len(h) && h[k] == '=' && cur >= 0 {
				v := skipChars(h, k+1, " \t")
				if v < len(h) && h[v] == '=' {
					// token68 ("Basic abc=="), not an auth-param: skip it.
					i = skipChars(h, v, "=")
					continue
				}
				val, next := readValue(h, v)
				out[cur].Params[strings.ToLower(tok)] = val
				i = next
				continue
			}
			out = append(out, Challenge{Scheme: strings.ToLower(tok), Params: map[string]string{}})
			cur = len(out) - 1
			i = j
		}
	}
	return out
}

func skipChars(s string, i int, chars string) int {
	for i < len(s) && strings.IndexByte(chars, s[i]) >= 0 {
		i++
	}
	return i
}

// isTchar reports whether b is an RFC 9110 token character.
func isTchar(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

func readToken(s string, i int) (string, int) {
	j := i
	for j < len(s) && isTchar(s[j]) {
		j++
	}
	return s[i:j], j
}

// readValue reads a quoted string or, leniently, anything up to the next
// comma or space.
func readValue(s string, i int) (string, int) {
	if i < len(s) && s[i] == '"' {
		var b strings.Builder
		j := i + 1
		for j < len(s) {
			switch s[j] {
			case '\\':
				if j+1 < len(s) {
					b.WriteByte(s[j+1])
				}
				j += 2
				continue
			case '"':
				return b.String(), j + 1
			}
			b.WriteByte(s[j])
			j++
		}
		return b.String(), j // unterminated: take the rest
	}
	j := i
	for j < len(s) && s[j] != ',' && s[j] != ' ' && s[j] != '\t' {
		j++
	}
	return s[i:j], j
}

// hostAuth is what the client learned about a registry's authentication
// from its challenges, so that later requests authenticate up front.
type hostAuth struct {
	scheme         string // "basic" or "bearer"
	realm, service string
}

// tokenEntry caches one bearer token; lock serialises fetches so that
// concurrent requests needing the same scope fetch it once.
type tokenEntry struct {
	lock    chan struct{}
	token   string
	expires time.Time
}

// credentials returns the stored credentials for registry, if any.
func (c *Client) credentials(registry string) (user, secret string, err error) {
	if c.opts.Credentials == nil {
		return "", "", nil
	}
	user, secret, err = c.opts.Credentials.Get(registry)
	if err != nil {
		return "", "", fmt.Errorf("credentials for %s: %w", registry, err)
	}
	return user, secret, nil
}

// authorize adds the Authorization header that the registry is known to
// want: Basic credentials, or a bearer token for scopes (fetched or cached).
// Registries that never challenged get anonymous requests.
func (c *Client) authorize(ctx context.Context, req *http.Request, registry string, scopes []string) error {
	c.mu.Lock()
	ha := c.hosts[registry]
	c.mu.Unlock()
	if ha == nil {
		return nil
	}
	switch ha.scheme {
	case "basic":
		user, secret, err := c.credentials(registry)
		if err != nil {
			return err
		}
		if user != "" || secret != "" {
			req.SetBasicAuth(user, secret)
		}
	case "bearer":
		tok, err := c.token(ctx, registry, *ha, scopes)
		if err != nil {
			return err
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	return nil
}

// handleChallenge records what a 401 asked for and returns the scopes to
// use on the retry. It fails when the challenge cannot be answered.
func (c *Client) handleChallenge(registry string, chs []Challenge, scopes []string, sentAuth string) ([]string, error) {
	var bearer, basic *Challenge
	for i := range chs {
		switch chs[i].Scheme {
		case "bearer":
			if bearer == nil {
				bearer = &chs[i]
			}
		case "basic":
			if basic == nil {
				basic = &chs[i]
			}
		}
	}
	switch {
	case bearer != nil:
		realm := bearer.Params["realm"]
		if realm == "" {
			return nil, fmt.Errorf("bearer challenge without realm")
		}
		ha := &hostAuth{scheme: "bearer", realm: realm, service: bearer.Params["service"]}
		out := slices.Clone(scopes)
		for _, s := range strings.Fields(bearer.Params["scope"]) {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		c.mu.Lock()
		c.hosts[registry] = ha
		if tok, ok := strings.CutPrefix(sentAuth, "Bearer "); ok {
			// The token we sent was refused (expired or revoked): forget it.
			for _, e := range c.tokens {
				if e.token == tok {
					e.token, e.expires = "", time.Time{}
				}
			}
		}
		c.mu.Unlock()
		return out, nil
	case basic != nil:
		if strings.HasPrefix(sentAuth, "Basic ") {
			return nil, fmt.Errorf("credentials for %s were rejected", registry)
		}
		user, secret, err := c.credentials(registry)
		if err != nil {
			return nil, err
		}
		if user == "" && secret == "" {
			return nil, fmt.Errorf("authentication required and no credentials for %s (log in first)", registry)
		}
		c.mu.Lock()
		c.hosts[registry] = &hostAuth{scheme: "basic"}
		c.mu.Unlock()
		return scopes, nil
	}
	var names []string
	for _, ch := range chs {
		names = append(names, ch.Scheme)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no WWW-Authenticate challenge to answer")
	}
	return nil, fmt.Errorf("unsupported authentication scheme %s", strings.Join(names, ", "))
}

// token returns a bearer token for scopes from the cache or the realm.
func (c *Client) token(ctx context.Context, registry string, ha hostAuth, scopes []string) (string, error) {
	sorted := slices.Clone(scopes)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	key := registry + "\x00" + ha.realm + "\x00" + ha.service + "\x00" + strings.Join(sorted, " ")
	c.mu.Lock()
	e := c.tokens[key]
	if e == nil {
		e = &tokenEntry{lock: make(chan struct{}, 1)}
		c.tokens[key] = e
	}
	c.mu.Unlock()
	select {
	case e.lock <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-e.lock }()
	c.mu.Lock()
	tok, exp := e.token, e.expires
	c.mu.Unlock()
	if tok != "" && c.now().Before(exp) {
		return tok, nil
	}
	tok, exp, err := c.fetchToken(ctx, registry, ha, sorted)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	e.token, e.expires = tok, exp
	c.mu.Unlock()
	return tok, nil
}

// IdentityTokenUsername is the user name a CredentialStore returns with an
// identity (OAuth2 refresh) token as secret, as Docker's credential helpers
// do. Such a secret is exchanged at the token realm with grant_type
// refresh_token instead of being sent as a password.
const IdentityTokenUsername = "<token>"

// tokenResponse is the token server's answer (Docker token spec and OAuth2).
type tokenResponse struct {
	Token       string    `json:"token"`
	AccessToken string    `json:"access_token"`
	ExpiresIn   int       `json:"expires_in"`
	IssuedAt    time.Time `json:"issued_at"`
}

// fetchToken asks the realm for a token covering scopes: GET with service,
// scope and Basic credentials (or anonymous), or an OAuth2 refresh-token
// POST for identity tokens.
func (c *Client) fetchToken(ctx context.Context, registry string, ha hostAuth, scopes []string) (string, time.Time, error) {
	op := "requesting a token from " + ha.realm + " for"
	realm, err := url.Parse(ha.realm)
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return "", time.Time{}, fmt.Errorf("%w: bearer realm %q is not an http(s) URL", ErrInvalidResponse, ha.realm)
	}
	user, secret, err := c.credentials(registry)
	if err != nil {
		return "", time.Time{}, err
	}
	hasCreds := user != "" || secret != ""
	if hasCreds && realm.Scheme == "http" && !c.PlainHTTP(realm.Host) {
		return "", time.Time{}, fmt.Errorf("refusing to send credentials for %s to token realm %s over plain HTTP", registry, ha.realm)
	}
	build := func() (*http.Request, error) {
		u := *realm
		q := u.Query()
		if ha.service != "" {
			q.Set("service", ha.service)
		}
		var req *http.Request
		var err error
		if user == IdentityTokenUsername {
			form := url.Values{}
			form.Set("grant_type", "refresh_token")
			form.Set("refresh_token", secret)
			form.Set("client_id", "berth")
			if ha.service != "" {
				form.Set("service", ha.service)
			}
			if len(scopes) > 0 {
				form.Set("scope", strings.Join(scopes, " "))
			}
			u.RawQuery = q.Encode()
			req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
		} else {
			for _, s := range scopes {
				q.Add("scope", s)
			}
			if user != "" {
				q.Set("account", user)
			}
			u.RawQuery = q.Encode()
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
			if err == nil && hasCreds {
				req.SetBasicAuth(user, secret)
			}
		}
		if err != nil {
			return nil, err
		}
		req.Header.Set("User-Agent", c.opts.UserAgent)
		req.Header.Set("Accept", "application/json")
		return req, nil
	}
	resp, err := c.send(ctx, build)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%s %s: %w", op, registry, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", time.Time{}, responseError(resp, op, registry)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%s %s: %w", op, registry, err)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", time.Time{}, fmt.Errorf("%s %s: %w: %s", op, registry, ErrInvalidResponse, describeBody(resp.Header.Get("Content-Type"), body))
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" {
		return "", time.Time{}, fmt.Errorf("%s %s: %w: no token in the answer", op, registry, ErrInvalidResponse)
	}
	// Docker's token spec: expires_in defaults to and is at least 60 s.
	ttl := time.Duration(max(tr.ExpiresIn, 60)) * time.Second
	issued := c.now()
	if !tr.IssuedAt.IsZero() && tr.IssuedAt.Before(issued) && issued.Sub(tr.IssuedAt) < ttl {
		issued = tr.IssuedAt
	}
	// Renew a little early so that a token does not expire in flight.
	margin := min(ttl/10, 30*time.Second)
	c.log.Debug("registry token obtained", "registry", registry, "scopes", scopes, "ttl", ttl)
	return tok, issued.Add(ttl - margin), nil
}
