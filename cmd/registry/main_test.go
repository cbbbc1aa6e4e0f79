package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/config"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRun starts run in the background and waits for it to listen.
func startRun(t *testing.T, args, environ []string) (addr string, cancel func() error, logs *syncBuffer) {
	t.Helper()
	t.Cleanup(func() { slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil))) })
	ctx, stop := context.WithCancel(context.Background())
	logs = new(syncBuffer)
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, environ, io.Discard, logs, func(a net.Addr) { addrc <- a.String() })
	}()
	select {
	case addr = <-addrc:
	case err := <-done:
		stop()
		t.Fatalf("run returned before listening: %v\nlogs:\n%s", err, logs)
	case <-time.After(10 * time.Second):
		stop()
		t.Fatalf("run did not listen\nlogs:\n%s", logs)
	}
	var once sync.Once
	var runErr error
	cancel = func() error {
		once.Do(func() {
			stop()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				runErr = errors.New("run did not return after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = cancel() })
	return addr, cancel, logs
}

func TestRunServesAndShutsDown(t *testing.T) {
	root := t.TempDir()
	addr, cancel, logs := startRun(t, []string{"serve"}, []string{
		"REGISTRY_HTTP_ADDR=127.0.0.1:0",
		"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=" + root,
		"REGISTRY_HTTP_SECRET=test",
	})
	// The handler is still being written: assert only that HTTP is answered.
	resp, err := http.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := cancel(); err != nil {
		t.Fatalf("run: %v", err)
	}
	out := logs.String()
	for _, want := range []string{"msg=listening", "storage=filesystem", "msg=stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if _, err := http.Get("http://" + addr + "/v2/"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestRunConfigFileTLSAndJSONLogs(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeSelfSigned(t, dir)
	cfgPath := filepath.Join(dir, "config.yml")
	cfg := `version: 0.1
log:
  level: debug
  formatter: json
  fields:
    service: registry
storage:
  inmemory:
http:
  addr: 127.0.0.1:0
  secret: s
  tls:
    certificate: ` + cert + `
    key: ` + key + `
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, cancel, logs := startRun(t, []string{cfgPath}, nil)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil {
		t.Error("not served over TLS")
	}
	if err := cancel(); err != nil {
		t.Fatalf("run: %v", err)
	}
	out := logs.String()
	for _, want := range []string{`"msg":"listening"`, `"tls":true`, `"storage":"inmemory"`, `"service":"registry"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
}

// TestServeUntilDoneDrains checks that a request in flight when the context
// is cancelled still completes, and that serving then returns nil.
func TestServeUntilDoneDrains(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serveUntilDone(ctx, srv, ln, slog.New(slog.DiscardHandler)) }()

	body := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			body <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body <- string(b)
	}()
	<-started
	cancel()
	select {
	case err := <-served:
		t.Fatalf("returned with a request in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if got := <-body; got != "done" {
		t.Errorf("in-flight request got %q", got)
	}
	if err := <-served; err != nil {
		t.Errorf("serveUntilDone: %v", err)
	}
}

func TestRunErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	root := "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=" + t.TempDir()

	tests := []struct {
		name    string
		args    []string
		env     []string
		want    string
		isUsage bool
	}{
		{"port in use", nil, []string{"REGISTRY_HTTP_ADDR=" + busy.Addr().String(), root}, "address already in use", false},
		{"invalid config", []string{"serve"}, []string{"REGISTRY_HTTP_ADDR=nope", root}, "http.addr", false},
		{"missing file", []string{"/nonexistent/config.yml"}, nil, "no such file", false},
		{"missing file from env", nil, []string{"REGISTRY_CONFIGURATION_PATH=/nonexistent/c.yml"}, "no such file", false},
		{"s3 bad bucket", nil, []string{"REGISTRY_HTTP_ADDR=127.0.0.1:0", "REGISTRY_STORAGE_S3_BUCKET=b"}, "storage.s3.bucket", false},
		{"auth refused", nil, []string{"REGISTRY_HTTP_ADDR=127.0.0.1:0", root,
			"REGISTRY_AUTH_HTPASSWD_REALM=r", "REGISTRY_AUTH_HTPASSWD_PATH=/p"}, "auth.htpasswd", false},
		{"missing tls files", nil, []string{"REGISTRY_HTTP_ADDR=127.0.0.1:0", root,
			"REGISTRY_HTTP_TLS_CERTIFICATE=/nonexistent.crt", "REGISTRY_HTTP_TLS_KEY=/nonexistent.key"}, "http.tls", false},
		{"too many args", []string{"serve", "a.yml", "b.yml"}, nil, "too many arguments", true},
		{"unknown flag", []string{"--root", "/x"}, nil, "flag provided but not defined", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, tt.args, tt.env, io.Discard, io.Discard, func(net.Addr) { cancel() })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			var ue *usageError
			if errors.As(err, &ue) != tt.isUsage {
				t.Errorf("usage error = %v, want %v", !tt.isUsage, tt.isUsage)
			}
		})
	}
}

func TestRunHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"serve", "--help"}, {"version"}, {"--version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out bytes.Buffer
			if err := run(context.Background(), args, nil, &out, io.Discard, nil); err != nil {
				t.Fatal(err)
			}
			want := "Usage:"
			if strings.Contains(args[0], "version") {
				want = "registry github.com/berth-registry/berth "
			}
			if !strings.HasPrefix(out.String(), want) {
				t.Errorf("output %q does not start with %q", out.String(), want)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args    []string
		env     []string
		path    string
		command string
	}{
		{nil, nil, "", "serve"},
		{[]string{"serve"}, nil, "", "serve"},
		{[]string{"serve", "/etc/docker/registry/config.yml"}, nil, "/etc/docker/registry/config.yml", "serve"},
		{[]string{"config.yml"}, nil, "config.yml", "serve"},
		{nil, []string{"REGISTRY_CONFIGURATION_PATH=/c.yml"}, "/c.yml", "serve"},
		{[]string{"serve", "/a.yml"}, []string{"REGISTRY_CONFIGURATION_PATH=/c.yml"}, "/a.yml", "serve"},
		{[]string{"version"}, nil, "", "version"},
	}
	for _, tt := range tests {
		path, cmd, err := parseArgs(tt.args, tt.env)
		if err != nil || path != tt.path || cmd != tt.command {
			t.Errorf("parseArgs(%q, %q) = %q, %q, %v; want %q, %q", tt.args, tt.env, path, cmd, err, tt.path, tt.command)
		}
	}
}

func TestNewDriver(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	tests := []struct {
		name    string
		storage config.Storage
		want    string // driver name, or error substring
		wantErr bool
	}{
		{"filesystem", config.Storage{Filesystem: &config.Filesystem{RootDirectory: root}}, "filesystem", false},
		{"inmemory", config.Storage{InMemory: &config.InMemory{}}, "inmemory", false},
		{"s3", config.Storage{S3: &config.S3{Bucket: "b"}}, "storage.s3.bucket", true},
		{"none", config.Storage{}, "exactly one storage driver", true},
		{"two", config.Storage{InMemory: &config.InMemory{}, Filesystem: &config.Filesystem{RootDirectory: root}}, "exactly one storage driver", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := newDriver(&config.Config{Storage: tt.storage})
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
				if d != nil {
					t.Errorf("driver %v returned with an error", d)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Name() != tt.want {
				t.Errorf("Name() = %q, want %q", d.Name(), tt.want)
			}
			if c, ok := d.(io.Closer); ok {
				c.Close()
			}
		})
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("filesystem root not created: %v", err)
	}
}

func TestServerLogWriter(t *testing.T) {
	var buf syncBuffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w := serverLogWriter{l}
	w.Write([]byte("http: TLS handshake error from 1.2.3.4:5: EOF\n"))
	w.Write([]byte("http: panic serving 1.2.3.4:5: boom\n"))
	out := buf.String()
	if strings.Contains(out, "handshake") {
		t.Errorf("TLS handshake noise logged at info: %s", out)
	}
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "panic serving") {
		t.Errorf("panic not logged as error: %s", out)
	}
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key into dir.
func writeSelfSigned(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}
