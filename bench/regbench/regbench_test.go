package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got := percentile(ds, 0.99); got != 99*time.Millisecond {
		t.Errorf("p99 = %v", got)
	}
	if got := percentile(ds, 0.50); got != 50*time.Millisecond {
		t.Errorf("p50 = %v", got)
	}
	if got := percentile(ds[:1], 0.99); got != time.Millisecond {
		t.Errorf("p99 of one = %v", got)
	}
}

func TestWithDigestKeepsState(t *testing.T) {
	u, _ := url.Parse("http://h/v2/r/blobs/uploads/abc?_state=xyz")
	got := withDigest(u, "sha256:00")
	v, _ := url.Parse(got)
	if v.Query().Get("_state") != "xyz" || v.Query().Get("digest") != "sha256:00" {
		t.Errorf("withDigest = %s", got)
	}
}

func TestTableMediansAndFailures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	lines := `{"name":"berth","push_mbps":100,"head_rps":10,"peak_rss_mib":20,"errors_total":0}
{"name":"anchor","push_mbps":50,"head_rps":5,"peak_rss_mib":40,"errors_total":0}
{"name":"broken","failed":"did not start"}
{"name":"berth","push_mbps":300,"head_rps":30,"peak_rss_mib":20,"errors_total":0}
{"name":"anchor","push_mbps":50,"head_rps":5,"peak_rss_mib":40,"errors_total":2,"errors":{"head":2},"first_errors":{"head":"HEAD x: HTTP 500"}}
`
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := printTable(&b, path, "berth"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"medians over up to 2 rounds",
		"broken               FAILED: did not start",
		"ratios berth / anchor: push 4.00x",
		"RSS 0.50x",
		"not comparable",
		"ratios berth / broken: n/a (broken failed)",
		"errors anchor head: 2, first: HEAD x: HTTP 500",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestProcessGone(t *testing.T) {
	if processGone(os.Getpid()) {
		t.Error("own process reported gone")
	}
	if !processGone(1 << 30) {
		t.Error("absent pid reported running")
	}
}
