//go:build e2e

// Package e2e holds Berth's end-to-end tests: the real registry binary against real clients
// (Docker Engine, Podman, skopeo, crane), the OCI conformance suite and Debian's
// docker-registry (distribution 2.8) for storage compatibility.
//
// Run as root, after scripts/install-deps.sh:
//
//	go test -tags e2e -v -count=1 ./e2e/
//
// Environment:
//
//	TOOLS             directory holding crane and conformance (default <repo>/.cache/tools/bin,
//	                  then $PATH).
//	E2E_REGISTRY_BIN  run the tests against this registry binary instead of building
//	                  ./cmd/registry, e.g. E2E_REGISTRY_BIN=/usr/bin/docker-registry to check the
//	                  harness itself against distribution 2.8 (which is known to fail parts of
//	                  the conformance suite). The binary is started as `BIN serve CONFIG.yml`.
//	                  With it, a server killed by SIGTERM counts as a clean stop.
//
// Nothing here skips: a missing prerequisite is a failure (see need).
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	os.Exit(mainRun(m))
}

func mainRun(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: these tests start dockerd, podman and registries and must run as root")
		return 1
	}
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %s is not the repository root: %v\n", root, err)
		return 1
	}
	repoRoot = root
	toolsDir = os.Getenv("TOOLS")
	if toolsDir == "" {
		toolsDir = filepath.Join(repoRoot, ".cache", "tools", "bin")
	}

	tmp, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if bin := os.Getenv("E2E_REGISTRY_BIN"); bin != "" {
		berthBin, berthIsBerth = bin, false
		fmt.Fprintf(os.Stderr, "e2e: E2E_REGISTRY_BIN=%s: testing that binary instead of Berth\n", bin)
	} else {
		berthBin, berthIsBerth = filepath.Join(tmp, "registry"), true
		gobin, err := exec.LookPath("go")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: go not found in PATH:", err)
			return 1
		}
		start := time.Now()
		cmd := exec.Command(gobin, "build", "-o", berthBin, "./cmd/registry")
		cmd.Dir = repoRoot
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/registry failed: %v\n%s\n", err, out)
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", berthBin, time.Since(start).Round(time.Millisecond))
	}

	code := m.Run()
	stopDockerd()
	return code
}
