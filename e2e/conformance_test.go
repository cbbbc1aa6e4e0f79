//go:build e2e

package e2e

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// junit.xml as written by the OCI conformance suite (conformance/junit.go).
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Disabled int          `xml:"disabled,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Disabled  int         `xml:"disabled,attr"`
	Testcases []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string `xml:"name,attr"`
	Status    string `xml:"status,attr"` // passed, skipped, failure, error
	SystemOut string `xml:"system-out"`  // the errors of the test
}

// TestConformance runs the OCI distribution-spec conformance suite (all APIs and data sets,
// including upload cancel and tag parameters on manifest PUT) against Berth and requires
// every test to pass: nothing failed, nothing skipped (a skip means an API answered "not
// supported").
func TestConformance(t *testing.T) {
	need(t, "conformance")
	addr := startBerth(t, t.TempDir())
	runConformance(t, addr)
}

// runConformance runs the OCI conformance suite (the settings of TestConformance) against the
// registry at addr (host:port, plain HTTP) and fails the test unless every test case passed:
// nothing failed, nothing skipped.
func runConformance(t *testing.T, addr string) {
	t.Helper()
	conformance := need(t, "conformance")
	work := t.TempDir()
	results := filepath.Join(work, "results")

	env := []string{
		"OCI_REGISTRY=" + addr,
		"OCI_TLS=disabled",
		"OCI_REPO1=e2e/conformance/repo1",
		"OCI_REPO2=e2e/conformance/repo2",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_MANIFESTS_TAG_PARAM=true",
		"OCI_RESULTS_DIR=" + results,
		"OCI_LOG=warn",
	}
	// Only our OCI_* settings reach the suite; it runs in an empty directory, so it finds no
	// oci-conformance.yaml.
	o := cmdOpts{timeout: 4 * time.Minute, dir: work, env: env, dropEnv: "OCI_"}
	stdout, stderr, runErr := tryRun(t, o, conformance)

	raw, err := os.ReadFile(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Fatalf("conformance wrote no junit.xml (exit: %v): %v\n--- stdout:\n%s\n--- stderr:\n%s",
			runErr, err, tail(stdout, 60), tail(stderr, 60))
	}
	var ju junitSuites
	if err := xml.Unmarshal(raw, &ju); err != nil {
		t.Fatalf("parsing junit.xml: %v", err)
	}
	var cases []junitCase
	for _, s := range ju.Suites {
		cases = append(cases, s.Testcases...)
	}
	counts := map[string]int{}
	var bad []string
	for _, c := range cases {
		counts[c.Status]++
		if c.Status != "passed" {
			msg := strings.TrimSpace(c.SystemOut)
			if len(msg) > 600 {
				msg = msg[:600] + " [...]"
			}
			bad = append(bad, fmt.Sprintf("%-7s %s\n          %s", strings.ToUpper(c.Status), c.Name,
				strings.ReplaceAll(msg, "\n", "\n          ")))
		}
	}
	t.Logf("conformance: %d results (suite counters: tests=%d failures=%d errors=%d skipped=%d disabled=%d); leaf test cases: %d passed, %d failed, %d errors, %d skipped",
		len(cases), ju.Tests, ju.Failures, ju.Errors, ju.Skipped, ju.Disabled,
		counts["passed"], counts["failure"], counts["error"], counts["skipped"])

	if len(cases) == 0 || ju.Tests == 0 {
		t.Fatalf("conformance ran no test (exit: %v)\n--- stdout:\n%s\n--- stderr:\n%s", runErr, tail(stdout, 60), tail(stderr, 60))
	}
	if len(bad) > 0 || ju.Failures+ju.Errors+ju.Skipped+ju.Disabled > 0 {
		t.Errorf("conformance: %d of %d test cases did not pass:\n%s", len(bad), len(cases), strings.Join(bad, "\n"))
		t.Errorf("conformance report (results in %s), summary:\n%s", results, conformanceSummary(stdout))
	}
	if runErr != nil && len(bad) == 0 {
		t.Errorf("conformance exited with %v although every test passed\n--- stderr:\n%s", runErr, tail(stderr, 40))
	}
}

// conformanceSummary is the end of the suite's text report: counters and per-API and
// per-data-set status.
func conformanceSummary(stdout string) string {
	if i := strings.Index(stdout, "OCI Conformance Result:"); i >= 0 {
		return stdout[i:]
	}
	return tail(stdout, 80)
}
