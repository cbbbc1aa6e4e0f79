// Package testenv holds what runner's unit tests share about their environment: a missing
// prerequisite (root, most often) skips a test on a developer's machine and fails it in CI
// (CI=true), never a silent skip there (DESIGN.md, Testing).
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// SkipOrFailInCI skips the test with the message on a developer's machine; in CI the
// missing prerequisite is a failure.
func SkipOrFailInCI(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal("prerequisite missing in CI: " + msg)
	}
	t.Skip(msg)
}

// NeedRoot is SkipOrFailInCI unless the test runs as root; why says what needs it.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFailInCI(t, "needs root (%s)", why)
	}
}
