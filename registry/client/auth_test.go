package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseChallenges(t *testing.T) {
	tests := []struct {
		in   []string
		want []Challenge
	}{
		{[]string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"`},
			[]Challenge{{"bearer", map[string]string{"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:samalba/my-app:pull,push"}}}},
		{[]string{`Basic realm="Registry Realm"`}, []Challenge{{"basic", map[string]string{"realm": "Registry Realm"}}}},
		{[]string{`Basic realm="a, b", Bearer realm="https://t/x?a=1,b=2", service=svc , error="invalid_token"`},
			[]Challenge{{"basic", map[string]string{"realm": "a, b"}}, {"bearer", map[string]string{"realm": "https://t/x?a=1,b=2", "service": "svc", "error": "invalid_token"}}}},
		{[]string{`Basic realm="x"`, `bearer Realm="y",Scope="a b"`},
			[]Challenge{{"basic", map[string]string{"realm": "x"}}, {"bearer", map[string]string{"realm": "y", "scope": "a b"}}}},
		{[]string{`Bearer realm="with \"escaped\" quote",service="s"`},
			[]Challenge{{"bearer", map[string]string{"realm": `with "escaped" quote`, "service": "s"}}}},
		{[]string{`Negotiate abc==, Basic realm=r`},
			[]Challenge{{"negotiate", map[string]string{}}, {"basic", map[string]string{"realm": "r"}}}},
		{[]string{`Bearer realm="unterminated`}, []Challenge{{"bearer", map[string]string{"realm": "unterminated"}}}},
		{[]string{``, `  ,  `}, nil},
	}
	for _, tt := range tests {
		got := ParseChallenges(tt.in)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseChallenges(%q) =\n %#v\nwant\n %#v", tt.in, got, tt.want)
		}
	}
}

// tokenServer is a fake Docker token service.
type tokenServer struct {
	t          *testing.T
	srv        *httptest.Server
	user, pass string
	anonymous  bool   // issue tokens without credentials
	field      string // "token" or "access_token"
	expiresIn  int

	mu       sync.Mutex
	n        int
	tokens   map[string][]string // token -> scopes
	requests []*http.Request
	forms    []url.Values
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{t: t, user: "alice", pass: "s3cret", field: "token", expiresIn: 300, tokens: map[string][]string{}}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.requests = append(ts.requests, r.Clone(context.Background()))
	if r.URL.Query().Get("service") != "fake-registry" {
		http.Error(w, `{"details":"bad service"}`, http.StatusBadRequest)
		return
	}
	scopes := r.URL.Query()["scope"]
	if r.Method == http.MethodPost {
		_ = r.ParseForm()
		ts.forms = append(ts.forms, r.PostForm)
		if r.PostForm.Get("grant_type") != "refresh_token" || r.PostForm.Get("refresh_token") != "refresh-me" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusUnauthorized)
			return
		}
		scopes = strings.Fields(r.PostForm.Get("scope"))
	} else if u, p, ok := r.BasicAuth(); ok {
		if u != ts.user || p != ts.pass {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"details":"incorrect username or password"}`)
			return
		}
	} else if !ts.anonymous {
		http.Error(w, `{"details":"credentials required"}`, http.StatusUnauthorized)
		return
	}
	ts.n++
	tok := fmt.Sprintf("tok%d", ts.n)
	ts.tokens[tok] = scopes
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{ts.field: tok, "expires_in": ts.expiresIn})
}

// allows reports whether token grants action on repo ("" repo: any valid
// token).
func (ts *tokenServer) allows(token, repo, action string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	scopes, ok := ts.tokens[token]
	if !ok {
		return false
	}
	if repo == "" {
		return true
	}
	for _, s := range scopes {
		parts := strings.Split(s, ":")
		if len(parts) == 3 && parts[0] == "repository" && parts[1] == repo && slices.Contains(strings.Split(parts[2], ","), action) {
			return true
		}
	}
	return false
}

func (ts *tokenServer) revokeAll() {
	ts.mu.Lock()
	ts.tokens = map[string][]string{}
	ts.mu.Unlock()
}

func (ts *tokenServer) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.requests)
}

// bearerRegistry is a fake registry guarded by a tokenServer. It serves one
// manifest (tag "v1") and its blobs for repository "team/app" and accepts
// monolithic uploads.
type bearerRegistry struct {
	ts        *tokenServer
	img       testImage
	mu        sync.Mutex
	uploaded  map[string][]byte
	unauth    int
	blobsSeen int
}

func (br *bearerRegistry) serve(w http.ResponseWriter, r *http.Request) {
	repo, action := "", "pull"
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v2/"); ok && rest != "" {
		for _, kw := range []string{"/manifests/", "/blobs/", "/tags/"} {
			if i := strings.Index(rest, kw); i >= 0 {
				repo = rest[:i]
				break
			}
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		action = "push"
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !br.ts.allows(tok, repo, action) {
		br.mu.Lock()
		br.unauth++
		br.mu.Unlock()
		scope := ""
		if repo != "" {
			scope = fmt.Sprintf(`,scope="repository:%s:%s"`, repo, map[string]string{"pull": "pull", "push": "pull,push"}[action])
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="fake-registry"%s`, br.ts.srv.URL, scope))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return
	}
	switch {
	case r.URL.Path == "/v2/":
		fmt.Fprint(w, "{}")
	case r.URL.Path == "/v2/team/app/manifests/v1":
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		w.Header().Set("Docker-Content-Digest", br.img.mdesc.Digest.String())
		w.Write(br.img.manifest)
	case strings.HasPrefix(r.URL.Path, "/v2/team/app/blobs/uploads/"):
		switch r.Method {
		case http.MethodPost:
			w.Header().Set("Location", "/v2/team/app/blobs/uploads/u1?_state=abc")
			w.WriteHeader(http.StatusAccepted)
		case http.MethodPut:
			if r.URL.Query().Get("_state") != "abc" {
				http.Error(w, "state lost", http.StatusBadRequest)
				return
			}
			b, _ := io.ReadAll(r.Body)
			br.mu.Lock()
			br.uploaded[r.URL.Query().Get("digest")] = b
			br.mu.Unlock()
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	case strings.HasPrefix(r.URL.Path, "/v2/team/app/blobs/"):
		br.mu.Lock()
		br.blobsSeen++
		br.mu.Unlock()
		d := strings.TrimPrefix(r.URL.Path, "/v2/team/app/blobs/")
		for _, l := range append([][]byte{br.img.config}, br.img.layers...) {
			if descOf("", l).Digest.String() == d {
				w.Write(l)
				return
			}
		}
		http.NotFound(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (br *bearerRegistry) unauthorized() int {
	br.mu.Lock()
	defer br.mu.Unlock()
	return br.unauth
}

func (ts *tokenServer) request(i int) *http.Request {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if i < 0 {
		i = len(ts.requests) + i
	}
	return ts.requests[i]
}

func (s *basicStats) get() (unauth, authed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unauth, s.authed
}

func newBearerRegistry(t *testing.T) (*bearerRegistry, string) {
	br := &bearerRegistry{ts: newTokenServer(t), img: makeImage(t, 100, 200), uploaded: map[string][]byte{}}
	_, host := fakeRegistry(t, br.serve)
	return br, host
}

func staticCreds(user, pass string) CredentialStore {
	return CredentialFunc(func(string) (string, string, error) { return user, pass, nil })
}

func TestBearerTokenFlow(t *testing.T) {
	ctx := context.Background()
	br, host := newBearerRegistry(t)
	c := newTestClient(t, Options{Credentials: staticCreds("alice", "s3cret")})
	clock := time.Now()
	var clockMu sync.Mutex
	c.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	ref := Reference{Registry: host, Repository: "team/app", Tag: "v1"}

	desc, body, err := c.GetManifest(ctx, ref)
	if err != nil || desc.Digest != br.img.mdesc.Digest || !bytes.Equal(body, br.img.manifest) {
		t.Fatalf("GetManifest: %+v %v", desc, err)
	}
	// The token request: Basic credentials, service and the pull scope.
	req := br.ts.request(0)
	if u, p, ok := req.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
		t.Errorf("token request credentials = %q %q %v", u, p, ok)
	}
	if got := req.URL.Query()["scope"]; !slices.Equal(got, []string{"repository:team/app:pull"}) {
		t.Errorf("token scopes = %q", got)
	}
	// Blobs in parallel reuse the cached token: no more token requests, no
	// more 401s.
	var wg sync.WaitGroup
	for _, l := range br.img.layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := descOf("", l)
			rc, err := c.FetchBlob(ctx, ref.Repo(), d, 0)
			if err != nil {
				t.Errorf("FetchBlob: %v", err)
				return
			}
			if _, err := readAllVerified(rc, d); err != nil {
				t.Errorf("FetchBlob content: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := br.ts.count(); n != 1 {
		t.Errorf("%d token requests, want 1 (cached)", n)
	}
	if n := br.unauthorized(); n != 1 {
		t.Errorf("%d 401 answers, want 1", n)
	}

	// Pushing needs pull,push: a new token for that scope.
	data := []byte("pushed content")
	if err := c.PushBlob(ctx, ref.Repo(), descOf("", data), bytes.NewReader(data)); err != nil {
		t.Fatalf("PushBlob: %v", err)
	}
	br.mu.Lock()
	got := br.uploaded[descOf("", data).Digest.String()]
	br.mu.Unlock()
	if !bytes.Equal(got, data) {
		t.Fatalf("uploaded %q", got)
	}
	last := br.ts.request(-1)
	if got := last.URL.Query()["scope"]; !slices.Equal(got, []string{"repository:team/app:pull,push"}) {
		t.Errorf("push token scopes = %q", got)
	}
	before := br.ts.count()

	// Expiry: after expires_in the token is fetched again, without a 401.
	clockMu.Lock()
	clock = clock.Add(10 * time.Minute)
	clockMu.Unlock()
	unauth := br.unauthorized()
	if _, _, err := c.GetManifest(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if br.ts.count() != before+1 || br.unauthorized() != unauth {
		t.Errorf("after expiry: %d token requests (want %d), %d 401s (want %d)", br.ts.count(), before+1, br.unauthorized(), unauth)
	}

	// Revoked tokens: the registry answers 401, the client fetches a new
	// token and retries once.
	br.ts.revokeAll()
	if _, _, err := c.GetManifest(ctx, ref); err != nil {
		t.Fatalf("after revocation: %v", err)
	}
	if br.ts.count() != before+2 {
		t.Errorf("after revocation: %d token requests, want %d", br.ts.count(), before+2)
	}
}

func TestBearerAnonymousAndAccessToken(t *testing.T) {
	br, host := newBearerRegistry(t)
	br.ts.anonymous = true
	br.ts.field = "access_token"
	c := newTestClient(t, Options{})
	if _, _, err := c.GetManifest(context.Background(), Reference{Registry: host, Repository: "team/app", Tag: "v1"}); err != nil {
		t.Fatalf("anonymous GetManifest: %v", err)
	}
	if h := br.ts.request(0).Header.Get("Authorization"); h != "" {
		t.Errorf("anonymous token request sent Authorization %q", h)
	}
	if err := c.Ping(context.Background(), host); err != nil {
		t.Fatalf("anonymous Ping: %v", err)
	}
}

func TestBearerBadCredentials(t *testing.T) {
	_, host := newBearerRegistry(t)
	c := newTestClient(t, Options{Credentials: staticCreds("alice", "wrong")})
	ref := Reference{Registry: host, Repository: "team/app", Tag: "v1"}
	_, _, err := c.GetManifest(context.Background(), ref)
	var re *Error
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &re) {
		t.Fatalf("GetManifest with bad credentials: %v", err)
	}
	mustContain(t, err, ref.String(), "incorrect username or password")
	if err := c.Ping(context.Background(), host); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Ping with bad credentials: %v", err)
	}
	// Anonymous, where the token server wants credentials.
	c = newTestClient(t, Options{})
	if _, _, err := c.GetManifest(context.Background(), ref); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("anonymous GetManifest: %v", err)
	}
}

func TestBearerIdentityToken(t *testing.T) {
	br, host := newBearerRegistry(t)
	c := newTestClient(t, Options{Credentials: staticCreds(IdentityTokenUsername, "refresh-me")})
	if _, _, err := c.GetManifest(context.Background(), Reference{Registry: host, Repository: "team/app", Tag: "v1"}); err != nil {
		t.Fatalf("GetManifest with identity token: %v", err)
	}
	br.ts.mu.Lock()
	defer br.ts.mu.Unlock()
	if len(br.ts.forms) != 1 || br.ts.forms[0].Get("scope") != "repository:team/app:pull" {
		t.Fatalf("OAuth2 forms = %v", br.ts.forms)
	}
}

// basicRegistry requires Basic alice:s3cret and serves a blob, which it
// redirects to redirect (when set) for reads.
func basicRegistry(t *testing.T, blob []byte, redirect string) (host string, stats *basicStats) {
	stats = &basicStats{}
	d := descOf("", blob)
	_, host = fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		stats.mu.Lock()
		defer stats.mu.Unlock()
		u, p, ok := r.BasicAuth()
		if !ok || u != "alice" || p != "s3cret" {
			stats.unauth++
			w.Header().Set("WWW-Authenticate", `Basic realm="fake, with comma"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		stats.authed++
		switch r.URL.Path {
		case "/v2/":
			fmt.Fprint(w, "{}")
		case "/v2/r/blobs/" + d.Digest.String():
			if redirect != "" {
				http.Redirect(w, r, redirect+"/storage/blob?X-Amz-Signature=secret", http.StatusTemporaryRedirect)
				return
			}
			w.Write(blob)
		default:
			http.NotFound(w, r)
		}
	})
	return host, stats
}

type basicStats struct {
	mu             sync.Mutex
	unauth, authed int
}

func TestBasicAuth(t *testing.T) {
	ctx := context.Background()
	blob := []byte("basic blob")
	d := descOf("", blob)
	host, stats := basicRegistry(t, blob, "")
	c := newTestClient(t, Options{Credentials: staticCreds("alice", "s3cret")})
	repo := Reference{Registry: host, Repository: "r"}
	for range 3 {
		rc, err := c.FetchBlob(ctx, repo, d, 0)
		if err != nil {
			t.Fatalf("FetchBlob: %v", err)
		}
		if b, err := readAllVerified(rc, d); err != nil || !bytes.Equal(b, blob) {
			t.Fatalf("content: %v", err)
		}
	}
	if unauth, authed := stats.get(); unauth != 1 || authed != 3 {
		t.Errorf("401s = %d (want 1), authenticated = %d (want 3)", unauth, authed)
	}
	for _, creds := range []CredentialStore{nil, staticCreds("alice", "nope")} {
		c := newTestClient(t, Options{Credentials: creds})
		_, err := c.FetchBlob(ctx, repo, d, 0)
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("FetchBlob with %v: %v", creds, err)
		}
		mustContain(t, err, repo.Name())
		if err := c.Ping(ctx, host); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Ping: %v", err)
		}
	}
}

func TestRedirectDropsAuthorization(t *testing.T) {
	ctx := context.Background()
	blob := []byte("0123456789 stored in object storage")
	d := descOf("", blob)
	var mu sync.Mutex
	var storageAuth, storageRange []string
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		storageAuth = append(storageAuth, r.Header.Get("Authorization"))
		storageRange = append(storageRange, r.Header.Get("Range"))
		mu.Unlock()
		if r.URL.Query().Get("X-Amz-Signature") != "secret" {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(blob))
	}))
	defer storage.Close()
	host, stats := basicRegistry(t, blob, storage.URL)
	c := newTestClient(t, Options{Credentials: staticCreds("alice", "s3cret")})
	repo := Reference{Registry: host, Repository: "r"}
	rc, err := c.FetchBlob(ctx, repo, d, 0)
	if err != nil {
		t.Fatalf("FetchBlob through redirect: %v", err)
	}
	if b, err := readAllVerified(rc, d); err != nil || !bytes.Equal(b, blob) {
		t.Fatalf("content: %q %v", b, err)
	}
	// Resume through the redirect: Range is forwarded, credentials are not.
	rc, err = c.FetchBlob(ctx, repo, d, 10)
	if err != nil {
		t.Fatalf("ranged FetchBlob through redirect: %v", err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(b, blob[10:]) {
		t.Fatalf("ranged content %q, %v", b, err)
	}
	if _, authed := stats.get(); authed != 2 {
		t.Errorf("registry saw %d authenticated requests, want 2", authed)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, a := range storageAuth {
		if a != "" {
			t.Errorf("storage request %d got Authorization %q", i, a)
		}
	}
	if len(storageRange) != 2 || storageRange[1] != "bytes=10-" {
		t.Errorf("storage Range headers = %q", storageRange)
	}
}
