package client

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestParseReference(t *testing.T) {
	dg := digest.FromString("x")
	tests := []struct {
		in                       string
		registry, repo, tag, str string
		digest                   digest.Digest
		familiar                 string
	}{
		{in: "busybox", registry: "docker.io", repo: "library/busybox", tag: "latest", str: "docker.io/library/busybox:latest", familiar: "busybox:latest"},
		{in: "busybox:1.36", registry: "docker.io", repo: "library/busybox", tag: "1.36", str: "docker.io/library/busybox:1.36"},
		{in: "user/app", registry: "docker.io", repo: "user/app", tag: "latest", str: "docker.io/user/app:latest", familiar: "user/app:latest"},
		{in: "docker.io/library/alpine:3", registry: "docker.io", repo: "library/alpine", tag: "3", str: "docker.io/library/alpine:3"},
		{in: "index.docker.io/library/alpine", registry: "docker.io", repo: "library/alpine", tag: "latest", str: "docker.io/library/alpine:latest"},
		{in: "127.0.0.1:5000/a/b:tag", registry: "127.0.0.1:5000", repo: "a/b", tag: "tag", str: "127.0.0.1:5000/a/b:tag", familiar: "127.0.0.1:5000/a/b:tag"},
		{in: "localhost/x", registry: "localhost", repo: "x", tag: "latest", str: "localhost/x:latest"},
		{in: "localhost:5000/x", registry: "localhost:5000", repo: "x", tag: "latest", str: "localhost:5000/x:latest"},
		{in: "ghcr.io/owner/img@" + dg.String(), registry: "ghcr.io", repo: "owner/img", digest: dg, str: "ghcr.io/owner/img@" + dg.String()},
		{in: "host.example/x:v1@" + dg.String(), registry: "host.example", repo: "x", tag: "v1", digest: dg, str: "host.example/x:v1@" + dg.String()},
		{in: "[::1]:5000/ip6/repo:t", registry: "[::1]:5000", repo: "ip6/repo", tag: "t", str: "[::1]:5000/ip6/repo:t"},
	}
	for _, tt := range tests {
		r, err := ParseReference(tt.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tt.in, err)
			continue
		}
		if r.Registry != tt.registry || r.Repository != tt.repo || r.Tag != tt.tag || r.Digest != tt.digest || r.String() != tt.str {
			t.Errorf("ParseReference(%q) = %+v (%s)", tt.in, r, r)
		}
		if tt.familiar != "" && r.Familiar() != tt.familiar {
			t.Errorf("Familiar(%q) = %q, want %q", tt.in, r.Familiar(), tt.familiar)
		}
		if err := r.validate(); err != nil {
			t.Errorf("validate(%q): %v", tt.in, err)
		}
	}
	for _, bad := range []string{"", "upper/Case", "a/b:", "a/b@sha256:123", "a//b", "-x", "x:tag with space", "host:5000/../etc", strings.Repeat("a", 64)} {
		if r, err := ParseReference(bad); err == nil {
			t.Errorf("ParseReference(%q) = %+v, want an error", bad, r)
		}
	}
	r, err := ParseRepository("busybox")
	if err != nil || r.String() != "docker.io/library/busybox" || r.Tag != "" {
		t.Errorf("ParseRepository(busybox) = %+v, %v", r, err)
	}
	if _, err := ParseRepository("busybox:latest"); err == nil {
		t.Error("ParseRepository accepted a tag")
	}
	if got := r.WithDigest(dg).Identifier(); got != dg.String() {
		t.Errorf("Identifier = %q", got)
	}
	if got := r.Identifier(); got != "latest" {
		t.Errorf("Identifier of bare repo = %q", got)
	}
	if apiHost("docker.io") != "registry-1.docker.io" || apiHost("ghcr.io") != "ghcr.io" {
		t.Error("apiHost")
	}
	for in, want := range map[string]string{
		"": "docker.io", "https://index.docker.io/v1/": "docker.io", "registry-1.docker.io": "docker.io",
		"Ghcr.IO": "ghcr.io", "http://host:5000/v2/": "host:5000", "127.0.0.1:5000": "127.0.0.1:5000",
	} {
		if got := NormalizeRegistry(in); got != want {
			t.Errorf("NormalizeRegistry(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPlainHTTPRules(t *testing.T) {
	c := New(Options{Insecure: []string{"reg.lan", "other.lan:5000", "10.1.0.0/16", "http://scheme.lan/", "[fd00::1]:443", "  "}})
	tests := map[string]bool{
		"localhost":        true,
		"localhost:5000":   true,
		"foo.localhost":    true,
		"127.0.0.1:5000":   true,
		"127.8.9.10":       true,
		"[::1]:5000":       true,
		"::1":              true,
		"reg.lan":          true,
		"reg.lan:8443":     true, // host entry: any port
		"other.lan:5000":   true,
		"other.lan":        false, // host:port entry: that port only
		"other.lan:5001":   false,
		"10.1.2.3:5000":    true,
		"10.2.0.1":         false,
		"scheme.lan":       true,
		"[fd00::1]:443":    true,
		"docker.io":        false,
		"ghcr.io":          false,
		"128.0.0.1":        false,
		"localhost.evil.x": false,
	}
	for reg, want := range tests {
		if got := c.PlainHTTP(reg); got != want {
			t.Errorf("PlainHTTP(%q) = %v, want %v", reg, got, want)
		}
	}
}

// recordingTransport answers every request with 200 "{}" and records URLs.
type recordingTransport struct {
	mu   sync.Mutex
	urls []string
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.urls = append(rt.urls, req.URL.String())
	rt.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader("{}")), Request: req}, nil
}

func TestSchemeSelection(t *testing.T) {
	rt := &recordingTransport{}
	c := newTestClient(t, Options{Transport: rt, Insecure: []string{"plain.lan"}, UserAgent: "test-agent"})
	ctx := context.Background()
	for _, reg := range []string{"docker.io", "ghcr.io", "127.0.0.1:5000", "plain.lan", "secure.lan:5000"} {
		if err := c.Ping(ctx, reg); err != nil {
			t.Fatalf("Ping(%s): %v", reg, err)
		}
	}
	want := []string{"https://registry-1.docker.io/v2/", "https://ghcr.io/v2/", "http://127.0.0.1:5000/v2/", "http://plain.lan/v2/", "https://secure.lan:5000/v2/"}
	if strings.Join(rt.urls, " ") != strings.Join(want, " ") {
		t.Errorf("URLs = %v, want %v", rt.urls, want)
	}
}
