//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Set by TestMain.
var (
	repoRoot     string // repository root (holds go.mod)
	toolsDir     string // $TOOLS or <repo>/.cache/tools/bin
	berthBin     string // the registry binary under test
	berthIsBerth bool   // false when E2E_REGISTRY_BIN replaced Berth
)

const dockerRegistryBin = "/usr/bin/docker-registry"

// ---------------------------------------------------------------------------------------------
// prerequisites

// need returns the path of a tool, looked up in toolsDir first and then in $PATH. A missing
// tool fails the test: this package never skips (DESIGN.md: in CI a missing prerequisite is a
// failure; scripts/install-deps.sh installs all of them).
func need(t testing.TB, tool string) string {
	t.Helper()
	if filepath.IsAbs(tool) {
		if st, err := os.Stat(tool); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			t.Fatalf("prerequisite %s missing or not executable (run scripts/install-deps.sh): %v", tool, err)
		}
		return tool
	}
	if toolsDir != "" {
		p := filepath.Join(toolsDir, tool)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("prerequisite %q not found in %s nor in PATH (run scripts/install-deps.sh): %v", tool, toolsDir, err)
	}
	return p
}

// ---------------------------------------------------------------------------------------------
// running commands

type cmdOpts struct {
	timeout time.Duration // default 2 minutes
	env     []string      // added to os.Environ()
	dropEnv string        // prefix of variables of os.Environ() not to pass on (e.g. "OCI_")
	dir     string
	stdin   io.Reader
}

// tryRun runs a command and returns its stdout, stderr and error; it never fails the test.
func tryRun(t testing.TB, o cmdOpts, name string, args ...string) (string, string, error) {
	t.Helper()
	if o.timeout == 0 {
		o.timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = o.dir
	cmd.Stdin = o.stdin
	if len(o.env) > 0 || o.dropEnv != "" {
		for _, kv := range os.Environ() {
			if o.dropEnv == "" || !strings.HasPrefix(kv, o.dropEnv) {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, o.env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	line := name + " " + strings.Join(args, " ")
	if len(o.env) > 0 {
		line = strings.Join(o.env, " ") + " " + line
	}
	t.Logf("$ %s", line)
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", o.timeout, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Logf("  (%s)", d.Round(time.Millisecond))
	}
	return stdout.String(), stderr.String(), err
}

// runWith runs a command and returns its stdout; on error the test fails with the command
// line and both outputs.
func runWith(t testing.TB, o cmdOpts, name string, args ...string) string {
	t.Helper()
	stdout, stderr, err := tryRun(t, o, name, args...)
	if err != nil {
		t.Fatalf("command failed: %v\n$ %s %s\n--- stdout:\n%s\n--- stderr:\n%s", err, name,
			strings.Join(args, " "), tail(stdout, 80), tail(stderr, 80))
	}
	return stdout
}

// run is runWith with default options.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return runWith(t, cmdOpts{}, name, args...)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines cut ...]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------------------------------------
// registry servers

// registryServer is a registry process (Berth or distribution's docker-registry) serving
// Root on Addr.
type registryServer struct {
	Name    string // "berth" or "docker-registry"
	Addr    string // 127.0.0.1:PORT
	Root    string // storage.filesystem.rootdirectory
	LogPath string

	bin        string
	strictExit bool // SIGTERM must lead to exit status 0
	cmd        *exec.Cmd
	done       chan struct{}
	waitErr    error
	stopOnce   sync.Once
}

// startBerth starts the registry under test (Berth, or $E2E_REGISTRY_BIN) on a free port of
// 127.0.0.1 storing into root and returns its address. It is stopped with SIGTERM when the
// test ends, and must then exit cleanly.
func startBerth(t *testing.T, root string) string {
	t.Helper()
	return startBerthServer(t, root).Addr
}

func startBerthServer(t *testing.T, root string) *registryServer {
	t.Helper()
	name := "berth"
	if !berthIsBerth {
		name = "registry-under-test(" + filepath.Base(berthBin) + ")"
	}
	return startRegistry(t, name, berthBin, berthIsBerth, root)
}

// startDockerRegistry starts Debian's docker-registry (distribution 2.8) like startBerth.
func startDockerRegistry(t *testing.T, root string) string {
	t.Helper()
	return startDockerRegistryServer(t, root).Addr
}

func startDockerRegistryServer(t *testing.T, root string) *registryServer {
	t.Helper()
	return startRegistry(t, "docker-registry", need(t, dockerRegistryBin), false, root)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startRegistry(t *testing.T, name, bin string, strictExit bool, root string) *registryServer {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := tryStartRegistry(t, name, bin, strictExit, root)
		if err == nil {
			return s
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("starting %s: %v", name, lastErr)
	return nil
}

func tryStartRegistry(t *testing.T, name, bin string, strictExit bool, root string) (*registryServer, error) {
	return tryStartRegistryConfig(t, name, bin, strictExit, root, func(addr string) string {
		return fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, root, addr)
	})
}

// panics returns the log lines around recovered handler panics ("http: panic serving ...").
func (s *registryServer) panics() string {
	b, _ := os.ReadFile(s.LogPath)
	lines := strings.Split(string(b), "\n")
	var out []string
	for i, l := range lines {
		if strings.Contains(l, "panic") {
			out = append(out, lines[i:min(i+12, len(lines))]...)
			if len(out) > 120 {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

func (s *registryServer) logTail(n int) string {
	b, _ := os.ReadFile(s.LogPath)
	return tail(string(b), n)
}

// Stop sends SIGTERM and waits for the process. Berth must exit with status 0; the
// docker-registry (which has no SIGTERM handler without http.draintimeout) may die of the
// signal. It is safe to call more than once.
func (s *registryServer) Stop(t testing.TB) {
	t.Helper()
	s.stopOnce.Do(func() {
		select {
		case <-s.done:
			t.Errorf("%s on %s had exited before the end of the test: %v\n%s", s.Name, s.Addr, s.waitErr, s.logTail(40))
			return
		default:
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			t.Errorf("%s on %s did not exit within 15s of SIGTERM; killed\n%s", s.Name, s.Addr, s.logTail(40))
			return
		}
		if s.waitErr == nil {
			return
		}
		var ee *exec.ExitError
		if !s.strictExit && errors.As(s.waitErr, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				return
			}
		}
		t.Errorf("%s on %s: unclean exit after SIGTERM: %v (want exit status 0)\n%s", s.Name, s.Addr, s.waitErr, s.logTail(40))
	})
}

// ---------------------------------------------------------------------------------------------
// docker daemon

var (
	dockerOnce    sync.Once
	dockerErr     error
	dockerdCmd    *exec.Cmd // non-nil when we started dockerd
	dockerdDone   chan struct{}
	dockerdLogDir string
)

// needDocker makes sure a Docker daemon answers, starting dockerd when `docker info` fails.
// A dockerd started here is stopped at the end of TestMain.
func needDocker(t *testing.T) string {
	t.Helper()
	docker := need(t, "docker")
	dockerd := need(t, "dockerd")
	dockerOnce.Do(func() {
		if err := exec.Command(docker, "info").Run(); err == nil {
			return
		}
		dockerdLogDir, dockerErr = os.MkdirTemp("", "berth-e2e-dockerd-")
		if dockerErr != nil {
			return
		}
		logPath := filepath.Join(dockerdLogDir, "dockerd.log")
		logf, err := os.Create(logPath)
		if err != nil {
			dockerErr = err
			return
		}
		cmd := exec.Command(dockerd, "--host", "unix:///var/run/docker.sock", "--data-root", "/var/lib/docker")
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		fmt.Fprintf(os.Stderr, "e2e: starting %s (log %s)\n", strings.Join(cmd.Args, " "), logPath)
		if err := cmd.Start(); err != nil {
			logf.Close()
			dockerErr = err
			return
		}
		dockerdCmd, dockerdDone = cmd, make(chan struct{})
		go func() { _ = cmd.Wait(); logf.Close(); close(dockerdDone) }()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if err := exec.Command(docker, "info").Run(); err == nil {
				return
			}
			select {
			case <-dockerdDone:
				b, _ := os.ReadFile(logPath)
				dockerErr = fmt.Errorf("dockerd exited during start-up:\n%s", tail(string(b), 40))
				return
			default:
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(logPath)
				dockerErr = fmt.Errorf("dockerd not ready after 60s:\n%s", tail(string(b), 40))
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
	if dockerErr != nil {
		t.Fatalf("docker daemon: %v", dockerErr)
	}
	return docker
}

// stopDockerd stops the dockerd that needDocker started, if any.
func stopDockerd() {
	if dockerdCmd == nil {
		return
	}
	_ = dockerdCmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-dockerdDone:
	case <-time.After(30 * time.Second):
		fmt.Fprintln(os.Stderr, "e2e: dockerd did not stop within 30s of SIGTERM; killing it")
		_ = dockerdCmd.Process.Kill()
		<-dockerdDone
	}
	os.RemoveAll(dockerdLogDir)
}

// ---------------------------------------------------------------------------------------------
// registry HTTP API

var manifestMediaTypes = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

var httpClient = &http.Client{Timeout: 60 * time.Second}

func httpDo(t testing.TB, method, url string, hdr map[string]string, body []byte) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, b
}

// getManifest fetches repo:ref and checks that the body matches Docker-Content-Digest (and ref,
// when ref is a digest).
func getManifest(t testing.TB, addr, repo, ref string) (body []byte, mediaType, dgst string) {
	t.Helper()
	url := fmt.Sprintf("http://%s/v2/%s/manifests/%s", addr, repo, ref)
	resp, body := httpDo(t, http.MethodGet, url, map[string]string{"Accept": strings.Join(manifestMediaTypes, ", ")}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	dgst = digestOf(body)
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != dgst {
		t.Fatalf("GET %s: Docker-Content-Digest %s but body digests to %s", url, h, dgst)
	}
	if strings.HasPrefix(ref, "sha256:") && ref != dgst {
		t.Fatalf("GET %s: body digests to %s", url, dgst)
	}
	return body, resp.Header.Get("Content-Type"), dgst
}

func listTags(t testing.TB, addr, repo string) []string {
	t.Helper()
	url := fmt.Sprintf("http://%s/v2/%s/tags/list", addr, repo)
	resp, body := httpDo(t, http.MethodGet, url, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	var tl struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(body, &tl); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
	if tl.Name != repo {
		t.Errorf("GET %s: name %q, want %q", url, tl.Name, repo)
	}
	sort.Strings(tl.Tags)
	return tl.Tags
}

func catalog(t testing.TB, addr string) []string {
	t.Helper()
	url := fmt.Sprintf("http://%s/v2/_catalog?n=1000", addr)
	resp, body := httpDo(t, http.MethodGet, url, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	var c struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
	sort.Strings(c.Repositories)
	return c.Repositories
}

// manifestRefs is the part of an image manifest or index that names other content.
type manifestRefs struct {
	MediaType string `json:"mediaType"`
	Config    *struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Layers []struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	} `json:"layers"`
	Manifests []struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Platform  *struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
		} `json:"platform"`
	} `json:"manifests"`
}

func parseManifest(t testing.TB, b []byte) manifestRefs {
	t.Helper()
	var m manifestRefs
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("parsing manifest: %v\n%s", err, b)
	}
	return m
}

// blobsOf returns the digests of the config and layers of an image manifest.
func (m manifestRefs) blobs() []string {
	var out []string
	if m.Config != nil {
		out = append(out, m.Config.Digest)
	}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

var digestRE = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// storedBlobs lists the blobs a registry keeps in distribution's layout
// (<root>/docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data) as "sha256:<hex>".
func storedBlobs(t testing.TB, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	base := filepath.Join(root, "docker", "registry", "v2", "blobs", "sha256")
	matches, err := filepath.Glob(filepath.Join(base, "*", "*", "data"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range matches {
		out["sha256:"+filepath.Base(filepath.Dir(m))] = true
	}
	return out
}

// registrySnapshot is what a client can observe of a registry: catalog, tags, manifests.
type registrySnapshot struct {
	Repos     []string
	Tags      map[string][]string          // repo -> sorted tags
	Manifests map[string]map[string]string // repo -> tag -> manifest digest
	Bodies    map[string][]byte            // manifest digest -> body
}

func snapshotRegistry(t testing.TB, addr string) registrySnapshot {
	t.Helper()
	s := registrySnapshot{Repos: catalog(t, addr), Tags: map[string][]string{},
		Manifests: map[string]map[string]string{}, Bodies: map[string][]byte{}}
	for _, repo := range s.Repos {
		s.Tags[repo] = listTags(t, addr, repo)
		s.Manifests[repo] = map[string]string{}
		for _, tag := range s.Tags[repo] {
			body, _, d := getManifest(t, addr, repo, tag)
			s.Manifests[repo][tag] = d
			s.Bodies[d] = body
		}
	}
	return s
}

// ---------------------------------------------------------------------------------------------
// building test content

type tarEntry struct {
	Name string
	Body []byte
	Mode int64  // default 0644 (files), 0755 (dirs)
	Link string // symlink target
	Dir  bool
}

var epoch = time.Unix(1700000000, 0)

func buildTar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: e.Mode, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case e.Dir:
			h.Typeflag = tar.TypeDir
			if h.Mode == 0 {
				h.Mode = 0o755
			}
			if !strings.HasSuffix(h.Name, "/") {
				h.Name += "/"
			}
		case e.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.Link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.Body))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var busyboxApplets = []string{"sh", "echo", "cat", "ls", "mkdir", "true", "env", "sleep"}

// busyboxRootfs is a minimal root filesystem: /bin/busybox (from busybox-static) and a few
// applet symlinks.
func busyboxRootfs(t testing.TB) []tarEntry {
	t.Helper()
	bb, err := os.ReadFile(need(t, "/usr/bin/busybox"))
	if err != nil {
		t.Fatal(err)
	}
	entries := []tarEntry{{Name: "bin", Dir: true}, {Name: "tmp", Dir: true, Mode: 0o1777},
		{Name: "etc", Dir: true}, {Name: "bin/busybox", Body: bb, Mode: 0o755}}
	for _, a := range busyboxApplets {
		entries = append(entries, tarEntry{Name: "bin/" + a, Link: "busybox"})
	}
	return entries
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf) // no name, no mtime: deterministic
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ociImage is an OCI image built in memory.
type ociImage struct {
	Manifest []byte
	Digest   string
	Config   []byte
	Blobs    map[string][]byte // digest -> content (config and layers)
	Layers   []string          // layer digests in order
}

// newOCIImage builds an OCI image from uncompressed layer tars (stored gzip-compressed).
func newOCIImage(t testing.TB, osName, arch string, label string, layers ...[]byte) ociImage {
	t.Helper()
	img := ociImage{Blobs: map[string][]byte{}}
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	var layerDescs []desc
	var diffIDs []string
	var history []map[string]any
	for i, l := range layers {
		z := gzipBytes(t, l)
		d := digestOf(z)
		img.Blobs[d] = z
		img.Layers = append(img.Layers, d)
		layerDescs = append(layerDescs, desc{"application/vnd.oci.image.layer.v1.tar+gzip", d, len(z)})
		diffIDs = append(diffIDs, digestOf(l))
		history = append(history, map[string]any{"created": epoch.UTC().Format(time.RFC3339),
			"created_by": fmt.Sprintf("berth e2e layer %d", i)})
	}
	cfg := map[string]any{
		"created":      epoch.UTC().Format(time.RFC3339),
		"architecture": arch,
		"os":           osName,
		"config": map[string]any{
			"Cmd":    []string{"/bin/busybox", "echo", "ok"},
			"Env":    []string{"PATH=/bin"},
			"Labels": map[string]string{"org.berth.e2e": label},
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history": history,
	}
	var err error
	img.Config, err = json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cd := digestOf(img.Config)
	img.Blobs[cd] = img.Config
	man := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        desc{"application/vnd.oci.image.config.v1+json", cd, len(img.Config)},
		"layers":        layerDescs,
	}
	img.Manifest, err = json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	img.Digest = digestOf(img.Manifest)
	return img
}

// writeLayout writes img into an OCI image layout at dir, under the given tag
// (org.opencontainers.image.ref.name), for skopeo's oci:DIR:TAG and crane.
func (img ociImage) writeLayout(t testing.TB, dir, tag string) {
	t.Helper()
	blobDir := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p string, b []byte) {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`))
	for d, b := range img.Blobs {
		write(filepath.Join(blobDir, strings.TrimPrefix(d, "sha256:")), b)
	}
	write(filepath.Join(blobDir, strings.TrimPrefix(img.Digest, "sha256:")), img.Manifest)
	idx, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []map[string]any{{
			"mediaType":   "application/vnd.oci.image.manifest.v1+json",
			"digest":      img.Digest,
			"size":        len(img.Manifest),
			"annotations": map[string]string{"org.opencontainers.image.ref.name": tag},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(dir, "index.json"), idx)
}

// layoutManifest reads the manifest digest of the single (or tagged) image of an OCI layout
// and checks that every blob file in the layout matches its name.
func layoutManifest(t testing.TB, dir, tag string) (digest string, body []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("%s/index.json: %v", dir, err)
	}
	for _, m := range idx.Manifests {
		if tag == "" || m.Annotations["org.opencontainers.image.ref.name"] == tag {
			digest = m.Digest
		}
	}
	if digest == "" {
		t.Fatalf("%s/index.json has no manifest for tag %q:\n%s", dir, tag, b)
	}
	err = filepath.WalkDir(filepath.Join(dir, "blobs", "sha256"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		c, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if got := digestOf(c); got != "sha256:"+d.Name() {
			return fmt.Errorf("layout blob %s has digest %s", p, got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	body, err = os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	return digest, body
}

// uniq returns a short suffix unique to this run, for names in shared stores (docker, podman).
func uniq() string {
	return fmt.Sprintf("%d%03d", os.Getpid(), time.Now().UnixNano()%1000)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
