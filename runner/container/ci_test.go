package container

import (
	"fmt"
	"os"
	"testing"
)

// skipOrFailInCI skips a test whose prerequisite is missing on a developer's
// machine; in CI (CI=true) a missing prerequisite is a failure, never a skip.
func skipOrFailInCI(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal("prerequisite missing in CI: " + msg)
	}
	t.Skip(msg)
}
