package s3

// The tests of this package run against a real MinIO server, started once
// for the package by the first test that needs it and stopped by TestMain.
// The server binary comes from MINIO_BIN, $TOOLS/minio,
// <repo>/.cache/tools/bin/minio (installed by scripts/minio.sh) or PATH;
// without one the tests fail, they never skip.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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
	minioUser     = "berth-test"
	minioPassword = "berth-test-secret"
)

type minioServer struct {
	addr  string // host:port of the S3 API
	dir   string
	cmd   *exec.Cmd
	exit  chan struct{}
	admin *minio.Client
}

var (
	minioOnce sync.Once
	minioSrv  *minioServer
	minioErr  error
	bucketSeq atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if minioSrv != nil {
		minioSrv.stop()
	}
	os.Exit(code)
}

// repoRoot finds the module root above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

const installHint = "install it with `bash scripts/minio.sh` (builds <repo>/.cache/tools/bin/minio from the Go module proxy), " +
	"or set MINIO_BIN to a minio binary, or put minio in PATH"

// findMinio locates the minio binary.
func findMinio() (string, error) {
	if p := os.Getenv("MINIO_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("MINIO_BIN=%s: %w; %s", p, err, installHint)
		}
		return p, nil
	}
	if tools := os.Getenv("TOOLS"); tools != "" { // the Makefile's tool directory
		p := filepath.Join(tools, "minio")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if root, err := repoRoot(); err == nil {
		p := filepath.Join(root, ".cache", "tools", "bin", "minio")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	return "", errors.New("the MinIO server binary was not found; " + installHint)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startMinio starts a server on free ports over a temporary directory and
// waits until it is live.
func startMinio() (*minioServer, error) {
	bin, err := findMinio()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // a free port may be taken in between: try again
		s, err := startMinioOnce(bin)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startMinioOnce(bin string) (*minioServer, error) {
	dir, err := os.MkdirTemp("", "berth-minio-")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	console, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "minio.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "server", data, "--address", addr, "--console-address", console, "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+minioUser,
		"MINIO_ROOT_PASSWORD="+minioPassword,
		"MINIO_UPDATE=off",
		"MINIO_BROWSER=off",
		"MINIO_CI_CD=1",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &minioServer{addr: addr, dir: dir, cmd: cmd, exit: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exit) }()

	deadline := time.Now().Add(90 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-s.exit:
			log, _ := os.ReadFile(filepath.Join(dir, "minio.log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("minio exited during start-up: %s", strings.TrimSpace(string(log)))
		default:
		}
		resp, err := client.Get("http://" + addr + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("minio at %s not live after 90s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.admin, err = minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(minioUser, minioPassword, ""), Region: "us-east-1"})
	if err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *minioServer) stop() {
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.exit:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exit
		}
	}
	os.RemoveAll(s.dir)
}

// needMinio returns the package's MinIO server, starting it on first use.
// Without one the test fails: CI must never skip these tests.
func needMinio(t testing.TB) *minioServer {
	t.Helper()
	minioOnce.Do(func() { minioSrv, minioErr = startMinio() })
	if minioErr != nil {
		t.Fatalf("MinIO is required for the S3 driver tests: %v", minioErr)
	}
	return minioSrv
}

// newBucket creates a fresh bucket.
func newBucket(t testing.TB, s *minioServer) string {
	t.Helper()
	name := fmt.Sprintf("berth-test-%d-%d", os.Getpid(), bucketSeq.Add(1))
	if err := s.admin.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("MakeBucket(%s): %v", name, err)
	}
	return name
}

// testParams returns Params for a fresh bucket on the test server.
func testParams(t testing.TB) Params {
	t.Helper()
	s := needMinio(t)
	return Params{
		AccessKey:      minioUser,
		SecretKey:      minioPassword,
		RegionEndpoint: "http://" + s.addr,
		Bucket:         newBucket(t, s),
		ForcePathStyle: true,
		ChunkSize:      MinChunkSize,
	}
}

// newTestDriver opens a driver on a fresh bucket; edit adjusts the params.
func newTestDriver(t testing.TB, edit func(*Params)) (*Driver, Params) {
	t.Helper()
	p := testParams(t)
	if edit != nil {
		edit(&p)
	}
	d, err := New(context.Background(), p)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d, p
}

// bucketKeys lists every key in the bucket (with the admin client).
func bucketKeys(t testing.TB, bucket string) []string {
	t.Helper()
	var keys []string
	for obj := range needMinio(t).admin.ListObjectsIter(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("listing bucket %s: %v", bucket, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	return keys
}

// counter is an http.RoundTripper that counts and records requests.
type counter struct {
	base http.RoundTripper
	mu   sync.Mutex
	reqs []string
}

func newCounter(t testing.TB) *counter {
	tr, err := minio.DefaultTransport(false)
	if err != nil {
		t.Fatal(err)
	}
	return &counter{base: tr}
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, describeRequest(r))
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

func describeRequest(r *http.Request) string {
	q := r.URL.Query()
	var op []string
	for _, k := range []string{"uploads", "uploadId", "partNumber", "delete", "list-type", "location"} {
		if q.Has(k) {
			op = append(op, k)
		}
	}
	if r.Header.Get("X-Amz-Copy-Source") != "" {
		op = append(op, "copy")
	}
	return r.Method + " " + r.URL.Path + " " + strings.Join(op, ",")
}

// take returns the requests since the last call and forgets them.
func (c *counter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs
	c.reqs = nil
	return r
}
