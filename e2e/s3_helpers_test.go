//go:build e2e

package e2e

// Helpers of the S3 tests: a MinIO server per test (on 127.0.0.1, over a temporary directory,
// stoppable and restartable on the same port and data), registries configured with a storage.s3
// section, and a round-robin reverse proxy in front of several replicas.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const (
	minioUser     = "berth-e2e"
	minioPassword = "berth-e2e-secret"
	// s3ChunkSize is the multipart part size the registries under test use: S3's minimum, so
	// that layers of a few MiB already take the multipart paths.
	s3ChunkSize = 5 << 20
)

// minioServer is a MinIO server on Addr storing into Dir/data. Kill and Restart simulate an
// outage: the same port and data come back.
type minioServer struct {
	Addr    string // 127.0.0.1:PORT of the S3 API
	Dir     string
	LogPath string

	bin     string
	console string
	cmd     *exec.Cmd
	done    chan struct{}
	admin   *minio.Client
}

// startMinio starts a MinIO server for this test on free ports of 127.0.0.1 over a temporary
// directory; it is stopped when the test ends. A missing binary fails the test (it is installed
// by scripts/minio.sh into <repo>/.cache/tools/bin, or named by MINIO_BIN).
func startMinio(t *testing.T) *minioServer {
	t.Helper()
	bin := os.Getenv("MINIO_BIN")
	if bin == "" {
		bin = need(t, "minio")
	} else {
		bin = need(t, bin)
	}
	m := &minioServer{Dir: t.TempDir(), bin: bin}
	m.LogPath = filepath.Join(m.Dir, "minio.log")
	var err error
	for attempt := 0; attempt < 3; attempt++ { // a free port may be taken in between
		m.Addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		m.console = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		if err = m.start(t); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("starting MinIO: %v", err)
	}
	m.admin, err = minio.New(m.Addr, &minio.Options{Creds: credentials.NewStaticV4(minioUser, minioPassword, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			b, _ := os.ReadFile(m.LogPath)
			if s := strings.TrimSpace(string(b)); s != "" {
				t.Logf("--- MinIO log (%s), last lines:\n%s", m.LogPath, tail(s, 30))
			}
		}
	})
	return m
}

// start runs the server on m.Addr and waits until it is live.
func (m *minioServer) start(t *testing.T) error {
	t.Helper()
	logf, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(m.bin, "server", filepath.Join(m.Dir, "data"), "--address", m.Addr, "--console-address", m.console, "--quiet")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MINIO_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+minioPassword,
		"MINIO_UPDATE=off", "MINIO_BROWSER=off", "MINIO_CI_CD=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Logf("$ %s server %s --address %s  # MinIO", m.bin, filepath.Join(m.Dir, "data"), m.Addr)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	m.cmd, m.done = cmd, done

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			b, _ := os.ReadFile(m.LogPath)
			return fmt.Errorf("minio exited during start-up: %s", tail(string(b), 20))
		default:
		}
		resp, err := client.Get("http://" + m.Addr + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			m.stop()
			return fmt.Errorf("minio at %s not live after 60s", m.Addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the server (SIGTERM, then SIGKILL) and waits for it.
func (m *minioServer) stop() {
	if m.cmd == nil {
		return
	}
	select {
	case <-m.done:
		return
	default:
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
	}
}

// Kill stops the server abruptly (SIGKILL), as a crash or a network cut would.
func (m *minioServer) Kill(t *testing.T) {
	t.Helper()
	t.Logf("kill -9 MinIO (pid %d, %s)", m.cmd.Process.Pid, m.Addr)
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.done
}

// Restart starts the server again on the same address and data directory.
func (m *minioServer) Restart(t *testing.T) {
	t.Helper()
	var err error
	for attempt := 0; attempt < 20; attempt++ { // the port may linger for a moment
		if err = m.start(t); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("restarting MinIO on %s: %v", m.Addr, err)
}

// NewBucket creates a bucket (name is made unique and valid).
func (m *minioServer) NewBucket(t *testing.T, name string) string {
	t.Helper()
	name = fmt.Sprintf("%s-%d", strings.ToLower(name), bucketSeq.Add(1))
	if err := m.admin.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	return name
}

var bucketSeq atomic.Int64

// Keys lists every key of the bucket.
func (m *minioServer) Keys(t testing.TB, bucket string) []string {
	t.Helper()
	var keys []string
	for obj := range m.admin.ListObjectsIter(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("listing bucket %s: %v", bucket, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	return keys
}

// s3Target is where a registry keeps its data in S3.
type s3Target struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string
	Root      string // storage.s3.rootdirectory, "" for none
	AccessKey string
	SecretKey string
}

func (m *minioServer) target(bucket string) s3Target {
	return s3Target{Endpoint: "http://" + m.Addr, Bucket: bucket, AccessKey: minioUser, SecretKey: minioPassword}
}

func (s s3Target) String() string {
	return "s3://" + s.Bucket + "/" + strings.TrimPrefix(s.Root, "/")
}

// berthS3Config is Berth's configuration for s on addr.
func berthS3Config(addr string, s s3Target) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  s3:
    accesskey: %q
    secretkey: %q
    region: us-east-1
    regionendpoint: %q
    bucket: %q
    secure: false
    forcepathstyle: true
    rootdirectory: %q
    chunksize: %d
  delete:
    enabled: true
  redirect:
    disable: true
http:
  addr: %s
`, s.AccessKey, s.SecretKey, s.Endpoint, s.Bucket, s.Root, s3ChunkSize, addr)
}

// dockerRegistryS3Config is distribution 2.8's configuration (its s3-aws driver) for s on addr.
// Distribution 2.8 has no forcepathstyle key: it uses path-style URLs whenever regionendpoint is
// set. Redirects of blob GETs to presigned URLs are disabled, as they are for Berth.
func dockerRegistryS3Config(addr string, s s3Target) string {
	root := ""
	if s.Root != "" {
		root = fmt.Sprintf("    rootdirectory: %q\n", s.Root)
	}
	return fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  s3:
    accesskey: %q
    secretkey: %q
    region: us-east-1
    regionendpoint: %q
    bucket: %q
    secure: false
    v4auth: true
    chunksize: %d
%s  delete:
    enabled: true
  redirect:
    disable: true
http:
  addr: %s
`, s.AccessKey, s.SecretKey, s.Endpoint, s.Bucket, s3ChunkSize, root, addr)
}

// startBerthS3 starts Berth (or $E2E_REGISTRY_BIN) on s.
func startBerthS3(t *testing.T, s s3Target) *registryServer {
	t.Helper()
	name := "berth"
	if !berthIsBerth {
		name = "registry-under-test(" + filepath.Base(berthBin) + ")"
	}
	return startRegistryConfig(t, name, berthBin, berthIsBerth, s.String(), func(addr string) string {
		return berthS3Config(addr, s)
	})
}

// startDockerRegistryS3 starts Debian's docker-registry (distribution 2.8) on s.
func startDockerRegistryS3(t *testing.T, s s3Target) *registryServer {
	t.Helper()
	return startRegistryConfig(t, "docker-registry", need(t, dockerRegistryBin), false, s.String(), func(addr string) string {
		return dockerRegistryS3Config(addr, s)
	})
}

// startRegistryConfig is startRegistry with the configuration written by config for the
// chosen address; where describes the storage for the log.
func startRegistryConfig(t *testing.T, name, bin string, strictExit bool, where string, config func(addr string) string) *registryServer {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := tryStartRegistryConfig(t, name, bin, strictExit, where, config)
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

func tryStartRegistryConfig(t *testing.T, name, bin string, strictExit bool, where string, config func(addr string) string) (*registryServer, error) {
	t.Helper()
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config(addr)), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	s := &registryServer{Name: name, Addr: addr, Root: where, LogPath: logPath, bin: bin,
		strictExit: strictExit, done: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve", cfgPath)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") && !strings.HasPrefix(kv, "AWS_") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	t.Logf("$ %s serve %s  # %s on %s, storage %s", bin, cfgPath, name, addr, where)
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("%s exited before serving (%v); config:\n%s\nlog:\n%s", name, s.waitErr, config(addr), s.logTail(40))
		default:
		}
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				break
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			_ = s.cmd.Process.Kill()
			<-s.done
			return nil, fmt.Errorf("%s not ready on %s after 30s: %v; log:\n%s", name, addr, err, s.logTail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			t.Logf("--- %s log (%s), last lines:\n%s", name, s.LogPath, s.logTail(60))
			if p := s.panics(); p != "" {
				t.Errorf("%s logged panics:\n%s", name, p)
			}
		}
	})
	return s, nil
}

// Kill9 kills the server with SIGKILL and waits for it; the end-of-test Stop then expects
// nothing more of it.
func (s *registryServer) Kill9(t *testing.T) {
	t.Helper()
	t.Logf("kill -9 %s on %s (pid %d)", s.Name, s.Addr, s.cmd.Process.Pid)
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	})
}

// Alive reports whether the process is still running.
func (s *registryServer) Alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// ---------------------------------------------------------------------------------------------
// round-robin proxy

// rrProxy is a reverse proxy on 127.0.0.1 that sends each request to the next of its targets
// in turn, like a load balancer without affinity.
type rrProxy struct {
	Addr    string
	targets []string
	next    atomic.Uint64
	mu      sync.Mutex
	hits    map[string]int
}

func startRRProxy(t *testing.T, targets ...string) *rrProxy {
	t.Helper()
	p := &rrProxy{targets: targets, hits: map[string]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			target := p.targets[(p.next.Add(1)-1)%uint64(len(p.targets))]
			p.mu.Lock()
			p.hits[target]++
			p.mu.Unlock()
			pr.SetURL(&url.URL{Scheme: "http", Host: target})
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			t.Logf("proxy: %s %s: %v", r.Method, r.URL, err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	srv := httptest.NewServer(rp) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	p.Addr = strings.TrimPrefix(srv.URL, "http://")
	t.Logf("round-robin proxy on %s -> %s", p.Addr, strings.Join(targets, ", "))
	return p
}

// Hits returns how many requests each target received.
func (p *rrProxy) Hits() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.hits {
		out[k] = v
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// hand-driven uploads

// ociErrorBody is the OCI error JSON.
type ociErrorBody struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// parseOCIError parses an OCI error body; ok is false when it is not one.
func parseOCIError(b []byte) (ociErrorBody, bool) {
	var e ociErrorBody
	if err := json.Unmarshal(b, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code == "" {
		return e, false
	}
	return e, true
}

// startUpload opens an upload session in repo at addr and returns its Location (a path).
func startUpload(t *testing.T, addr, repo string) string {
	t.Helper()
	url := fmt.Sprintf("http://%s/v2/%s/blobs/uploads/", addr, repo)
	resp, body := httpDo(t, http.MethodPost, url, nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, body)
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		t.Fatalf("POST %s: no Location", url)
	}
	return uploadPathOf(t, loc)
}

// uploadPathOf reduces a Location to its path and query, to be sent to any replica.
func uploadPathOf(t *testing.T, loc string) string {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q: %v", loc, err)
	}
	return u.RequestURI()
}

// withQuery adds k=v to the query of a Location path.
func withQuery(loc, k, v string) string {
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	return loc + sep + k + "=" + url.QueryEscape(v)
}

// patchChunk sends chunk at offset to the session at loc on addr and returns the response
// (status, body, new Location path).
func patchChunk(t *testing.T, addr, loc string, offset int64, chunk []byte) (*http.Response, []byte, string) {
	t.Helper()
	hdr := map[string]string{
		"Content-Type":  "application/octet-stream",
		"Content-Range": fmt.Sprintf("%d-%d", offset, offset+int64(len(chunk))-1),
	}
	resp, body := httpDo(t, http.MethodPatch, "http://"+addr+loc, hdr, chunk)
	next := loc
	if l := resp.Header.Get("Location"); l != "" {
		next = uploadPathOf(t, l)
	}
	return resp, body, next
}

// mustPatch is patchChunk requiring 202 and a Range that ends at offset+len(chunk)-1.
func mustPatch(t *testing.T, addr, loc string, offset int64, chunk []byte) string {
	t.Helper()
	resp, body, next := patchChunk(t, addr, loc, offset, chunk)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH http://%s%s (bytes %d-%d): %s: %s", addr, loc, offset, offset+int64(len(chunk))-1, resp.Status, body)
	}
	if want := fmt.Sprintf("0-%d", offset+int64(len(chunk))-1); resp.Header.Get("Range") != want {
		t.Fatalf("PATCH http://%s%s: Range %q, want %q", addr, loc, resp.Header.Get("Range"), want)
	}
	return next
}

// uploadStatus asks addr where the session at loc stands and returns the size it reports.
func uploadStatus(t *testing.T, addr, loc string) int64 {
	t.Helper()
	resp, body := httpDo(t, http.MethodGet, "http://"+addr+loc, nil, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("GET http://%s%s (upload status): %s: %s", addr, loc, resp.Status, body)
	}
	r := resp.Header.Get("Range")
	var first, last int64
	if _, err := fmt.Sscanf(r, "%d-%d", &first, &last); err != nil || first != 0 {
		t.Fatalf("GET http://%s%s (upload status): Range %q", addr, loc, r)
	}
	if last == 0 {
		// "0-0" is both "nothing yet" (as distribution answers) and "one byte"; the tests here
		// never stop at one byte.
		return 0
	}
	return last + 1
}

// completeUpload sends the final PUT ?digest= (with an optional last chunk) and requires 201.
func completeUpload(t *testing.T, addr, loc, dgst string, offset int64, last []byte) {
	t.Helper()
	hdr := map[string]string{"Content-Type": "application/octet-stream"}
	if len(last) > 0 {
		hdr["Content-Range"] = fmt.Sprintf("%d-%d", offset, offset+int64(len(last))-1)
	}
	url := "http://" + addr + withQuery(loc, "digest", dgst)
	resp, body := httpDo(t, http.MethodPut, url, hdr, last)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %s: %s", url, resp.Status, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != dgst {
		t.Fatalf("PUT %s: Docker-Content-Digest %q, want %s", url, got, dgst)
	}
}

// checkBlob fetches repo@dgst from addr and requires exactly want.
func checkBlob(t *testing.T, addr, repo, dgst string, want []byte) {
	t.Helper()
	url := fmt.Sprintf("http://%s/v2/%s/blobs/%s", addr, repo, dgst)
	resp, body := httpDo(t, http.MethodHead, url, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(want)) {
		t.Errorf("HEAD %s: %s, Content-Length %d, want 200 and %d", url, resp.Status, resp.ContentLength, len(want))
	}
	resp, body = httpDo(t, http.MethodGet, url, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %.300s", url, resp.Status, body)
	}
	if !bytes.Equal(body, want) {
		t.Fatalf("GET %s: %d bytes with digest %s, want %d bytes", url, len(body), digestOf(body), len(want))
	}
}

// blobStatus is the status of HEAD repo@dgst on addr.
func blobStatus(t *testing.T, addr, repo, dgst string) int {
	t.Helper()
	resp, _ := httpDo(t, http.MethodHead, fmt.Sprintf("http://%s/v2/%s/blobs/%s", addr, repo, dgst), nil, nil)
	return resp.StatusCode
}

// randomBytes returns n bytes of deterministic noise (incompressible, distinct per seed).
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := 0; i+8 <= n; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for j := 0; j < 8; j++ {
			b[i+j] = byte(x >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(i)
	}
	return b
}
