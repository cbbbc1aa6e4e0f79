// Command registry is Berth's OCI registry server, a drop-in for
// distribution's registry:2:
//
//	registry serve [config.yml]
//	registry [config.yml]
//	registry version
//
// Without a configuration file (argument or REGISTRY_CONFIGURATION_PATH) it
// serves 127.0.0.1:5000 from ./data; REGISTRY_* variables override any key.
// SIGINT or SIGTERM stops it gracefully: in-flight requests get 30 seconds
// to finish.
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/berth-registry/berth/config"
	"github.com/berth-registry/berth/registry"
	"github.com/berth-registry/berth/registry/store"
	"github.com/berth-registry/berth/storage"
	"github.com/berth-registry/berth/storage/filesystem"
	"github.com/berth-registry/berth/storage/memory"
	"github.com/berth-registry/berth/storage/s3"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version from the build info is shown.
var version string

const (
	// shutdownTimeout bounds the graceful shutdown after SIGINT/SIGTERM.
	shutdownTimeout = 30 * time.Second
	// readHeaderTimeout bounds how long a client may take to send headers.
	readHeaderTimeout = 30 * time.Second
	// idleTimeout closes keep-alive connections left idle.
	idleTimeout = 2 * time.Minute
)

const usage = `Usage:
  registry serve [config.yml]   serve the registry (the default command)
  registry [config.yml]         same as serve
  registry version              print the version

Without a file argument, REGISTRY_CONFIGURATION_PATH names the configuration
file; without either, the embedded defaults serve 127.0.0.1:5000 from ./data.
The configuration uses registry:2's keys; an environment variable
REGISTRY_<KEY_PATH> overrides a key, for example REGISTRY_HTTP_ADDR=:5000,
REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry,
REGISTRY_STORAGE_DELETE_ENABLED=false, REGISTRY_LOG_LEVEL=debug;
REGISTRY_STORAGE=<filesystem|inmemory|s3> selects the storage driver.

Flags:
  -h, --help      show this help
  --version       print the version
`

// usageError is a command-line mistake: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal gets the default action: exit at once
	}()
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr, nil)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "registry:", err)
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "Run 'registry --help' for usage.")
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run parses args, loads the configuration and serves until ctx is done.
// ready, when not nil, is called with the listening address.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer, ready func(net.Addr)) error {
	path, cmd, err := parseArgs(args, environ)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return nil
	case err != nil:
		return err
	case cmd == "version":
		fmt.Fprintln(stdout, versionString())
		return nil
	}

	cfg, err := config.Load(path, environ)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	logger, err := newLogger(stderr, cfg.Log)
	if err != nil {
		return err
	}
	slog.SetDefault(logger)
	if path != "" {
		logger.Info("configuration loaded", "path", path)
	}
	return serve(ctx, cfg, logger, ready)
}

// parseArgs returns the configuration path and the command ("serve" or
// "version"). A --help anywhere yields flag.ErrHelp.
func parseArgs(args, environ []string) (path, cmd string, err error) {
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	showVersion := fs.Bool("version", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", "", err
		}
		return "", "", &usageError{err.Error()}
	}
	if *showVersion {
		return "", "version", nil
	}
	rest := fs.Args()
	cmd = "serve"
	if len(rest) > 0 {
		switch rest[0] {
		case "serve":
			rest = rest[1:]
		case "version":
			if len(rest) > 1 {
				return "", "", &usageError{"version takes no arguments"}
			}
			return "", "version", nil
		case "help":
			return "", "", flag.ErrHelp
		case "garbage-collect":
			return "", "", errors.New("garbage-collect is not implemented")
		}
	}
	// Flags after the subcommand: registry serve --help.
	sfs := flag.NewFlagSet("registry serve", flag.ContinueOnError)
	sfs.SetOutput(io.Discard)
	if err := sfs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", "", err
		}
		return "", "", &usageError{err.Error()}
	}
	switch rest = sfs.Args(); len(rest) {
	case 0:
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, "REGISTRY_CONFIGURATION_PATH="); ok {
				path = v
			}
		}
	case 1:
		path = rest[0]
	default:
		return "", "", &usageError{fmt.Sprintf("too many arguments: %q", rest)}
	}
	return path, cmd, nil
}

// versionString describes the build.
func versionString() string {
	v := version
	if v == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			v = bi.Main.Version
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	return fmt.Sprintf("registry github.com/berth-registry/berth %s %s", v, runtime.Version())
}

// newLogger builds the process logger on w from log.*.
func newLogger(w io.Writer, c config.Log) (*slog.Logger, error) {
	level, err := c.SlogLevel()
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.JSON() {
		h = slog.NewJSONHandler(w, opts)
	}
	l := slog.New(h)
	for _, k := range slices.Sorted(maps.Keys(c.Fields)) {
		l = l.With(k, c.Fields[k])
	}
	return l, nil
}

// newDriver opens the storage driver the configuration selects.
func newDriver(cfg *config.Config) (storage.Driver, error) {
	switch name := cfg.Storage.Driver(); name {
	case config.DriverFilesystem:
		d, err := filesystem.New(cfg.Storage.Filesystem.RootDirectory, filesystem.WithSync(cfg.Storage.Filesystem.Sync))
		if err != nil {
			return nil, fmt.Errorf("storage.filesystem: %w", err)
		}
		return d, nil
	case config.DriverInMemory:
		return memory.New(), nil
	case config.DriverS3:
		c := cfg.Storage.S3
		// Start-up checks (bucket, credentials) retry transient failures;
		// bound them so that a dead endpoint fails the start in time.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		d, err := s3.New(ctx, s3.Params{
			AccessKey:        c.AccessKey,
			SecretKey:        c.SecretKey,
			Region:           c.Region,
			RegionEndpoint:   c.RegionEndpoint,
			Bucket:           c.Bucket,
			Secure:           c.Secure,
			ForcePathStyle:   c.ForcePathStyle,
			RootDirectory:    c.RootDirectory,
			ChunkSize:        c.ChunkSize,
			RedirectEndpoint: c.RedirectEndpoint,
		})
		if err != nil {
			return nil, err // names storage.s3 and what is wrong
		}
		return d, nil
	case "":
		return nil, fmt.Errorf("storage: exactly one storage driver must be configured, found %d", len(cfg.Storage.Drivers()))
	default:
		return nil, fmt.Errorf("storage.%s: unsupported storage driver", name)
	}
}

// serve runs the registry described by cfg until ctx is done, then shuts it
// down gracefully.
func serve(ctx context.Context, cfg *config.Config, logger *slog.Logger, ready func(net.Addr)) error {
	if t := cfg.Auth.Type(); t != "" {
		// Fail closed: never serve openly a registry configured to be protected.
		return fmt.Errorf("auth.%s: authentication is not built yet; refusing to serve without it", t)
	}
	tlsConfig, err := newTLSConfig(cfg.HTTP.TLS)
	if err != nil {
		return err
	}

	d, err := newDriver(cfg)
	if err != nil {
		return err
	}
	if c, ok := d.(io.Closer); ok {
		defer c.Close()
	}

	// Upload sessions live in storage, not in signed client state, so
	// replicas need no shared http.secret to continue each other's uploads.
	st := store.New(d, store.Options{DeleteEnabled: cfg.Storage.Delete.Enabled, Redirect: !cfg.Storage.Redirect.Disable, Logger: logger})
	handler := registry.New(st, registry.Options{
		Logger:            logger,
		AccessLogDisabled: cfg.Log.AccessLog.Disabled,
	})

	network := cmp.Or(cfg.HTTP.Net, "tcp")
	ln, err := net.Listen(network, cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		TLSConfig:         tlsConfig,
		ErrorLog:          log.New(serverLogWriter{logger}, "", 0),
	}
	logger.Info("listening",
		"addr", ln.Addr().String(), "net", network, "tls", tlsConfig != nil,
		"storage", d.Name(), "delete", cfg.Storage.Delete.Enabled)
	if ready != nil {
		ready(ln.Addr())
	}
	return serveUntilDone(ctx, srv, ln, logger)
}

// serveUntilDone serves on ln (with TLS when srv.TLSConfig is set) until
// ctx is done, then lets in-flight requests finish for up to
// shutdownTimeout. It returns nil after a clean shutdown.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener, logger *slog.Logger) error {
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		<-errc
		return fmt.Errorf("shutdown: requests still in flight after %s: %w", shutdownTimeout, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// newTLSConfig loads http.tls; nil when TLS is not configured.
func newTLSConfig(c config.TLS) (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.Certificate, c.Key)
	if err != nil {
		return nil, fmt.Errorf("http.tls: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if len(c.ClientCAs) > 0 {
		pool := x509.NewCertPool()
		for _, f := range c.ClientCAs {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("http.tls.clientcas: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("http.tls.clientcas: %s: no PEM certificate found", f)
			}
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// serverLogWriter bridges http.Server's error log to slog. TLS handshake
// failures (scanners, clients that distrust the certificate) are debug
// noise; anything else (such as a recovered handler panic) is an error.
type serverLogWriter struct{ l *slog.Logger }

func (w serverLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelError
	if strings.Contains(msg, "TLS handshake error") {
		level = slog.LevelDebug
	}
	w.l.Log(context.Background(), level, msg, "component", "http.Server")
	return len(p), nil
}
