// Package config is the registry's typed configuration: YAML with the key
// names of distribution's registry:2, so an existing
// /etc/docker/registry/config.yml loads as it is.
//
// Load builds a Config in three layers: the embedded defaults (default.yml),
// then the configuration file, then REGISTRY_* environment variables named
// after the key path (REGISTRY_HTTP_ADDR for http.addr). Validate checks the
// result. Keys that registry:2 knows and Berth does not use (http.headers,
// health, notifications, storage.cache, ...) are accepted and ignored; keys
// that would silently change what is served or who may access it (an unknown
// storage driver or auth type, http.tls.letsencrypt) are refused.
package config

import (
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed default.yml
var defaultYAML []byte

// Driver names as they appear under the storage key.
const (
	DriverFilesystem = "filesystem"
	DriverInMemory   = "inmemory"
	DriverS3         = "s3"
)

// driverNames lists the supported storage drivers in a stable order.
var driverNames = []string{DriverFilesystem, DriverInMemory, DriverS3}

// storageNonDrivers are the keys under storage that are not drivers (the
// rest are, as in distribution); cache, maintenance and tag are ignored.
var storageNonDrivers = []string{"delete", "redirect", "cache", "maintenance", "tag"}

// authTypes are the supported keys under auth.
var authTypes = []string{"htpasswd", "token"}

// MinS3ChunkSize is the smallest storage.s3.chunksize S3 accepts for
// multipart uploads (5 MiB).
const MinS3ChunkSize = 5 << 20

// DefaultFilesystemRoot is the filesystem root directory when a
// configuration selects the filesystem driver without a rootdirectory, as in
// distribution. (The embedded default, used without any file, is ./data.)
const DefaultFilesystemRoot = "/var/lib/registry"

// Config is the registry's configuration.
type Config struct {
	// Version is the configuration format version; only "0.1" exists.
	Version string `yaml:"version"`
	// Log configures the process logger.
	Log Log `yaml:"log"`
	// Storage selects and configures the storage driver.
	Storage Storage `yaml:"storage"`
	// HTTP configures the listener.
	HTTP HTTP `yaml:"http"`
	// Auth configures client authentication.
	Auth Auth `yaml:"auth"`
}

// Log configures logging (log.*).
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Formatter is text or json ("logstash" is accepted as json).
	Formatter string `yaml:"formatter"`
	// Fields are added to every log line (log.fields, as in distribution).
	Fields map[string]any `yaml:"fields"`
	// AccessLog configures the per-request log.
	AccessLog AccessLog `yaml:"accesslog"`
}

// AccessLog configures the access log (log.accesslog).
type AccessLog struct {
	// Disabled turns the access log off.
	Disabled bool `yaml:"disabled"`
}

// Storage selects one storage driver and tunes the store (storage.*).
// Exactly one of Filesystem, InMemory and S3 is set in a valid Config.
type Storage struct {
	// Filesystem selects the local filesystem driver.
	Filesystem *Filesystem `yaml:"filesystem"`
	// InMemory selects the in-memory driver (for tests; nothing persists).
	InMemory *InMemory `yaml:"inmemory"`
	// S3 selects the S3 driver.
	S3 *S3 `yaml:"s3"`
	// Delete configures deletion of blobs and manifests.
	Delete Delete `yaml:"delete"`
	// Redirect configures redirects of blob downloads to the backend.
	Redirect Redirect `yaml:"redirect"`
}

// Filesystem configures the filesystem driver (storage.filesystem).
type Filesystem struct {
	// RootDirectory is the directory holding docker/registry/v2.
	RootDirectory string `yaml:"rootdirectory"`
	// Sync fsyncs every blob, manifest and link before it becomes visible,
	// for durability across power loss (off by default, like registry:2).
	Sync bool `yaml:"sync"`
}

// InMemory configures the in-memory driver (storage.inmemory). It has no
// parameters; its presence selects the driver.
type InMemory struct{}

// S3 configures the S3 driver (storage.s3).
type S3 struct {
	// AccessKey is the access key ID; AWS_ACCESS_KEY_ID when unset.
	AccessKey string `yaml:"accesskey"`
	// SecretKey is the secret access key; AWS_SECRET_ACCESS_KEY when unset.
	SecretKey string `yaml:"secretkey"`
	// Region is the bucket's region; AWS_REGION (or AWS_DEFAULT_REGION)
	// when unset.
	Region string `yaml:"region"`
	// RegionEndpoint is the endpoint of an S3-compatible service (MinIO...).
	RegionEndpoint string `yaml:"regionendpoint"`
	// Bucket is the bucket name (required).
	Bucket string `yaml:"bucket"`
	// Secure uses HTTPS to the endpoint; true unless set to false.
	Secure bool `yaml:"secure"`
	// ForcePathStyle uses path-style instead of virtual-host-style URLs.
	ForcePathStyle bool `yaml:"forcepathstyle"`
	// RootDirectory is a key prefix inside the bucket.
	RootDirectory string `yaml:"rootdirectory"`
	// ChunkSize is the multipart upload part size in bytes; 0 means the
	// driver's default, else at least MinS3ChunkSize.
	ChunkSize int64 `yaml:"chunksize"`
	// RedirectEndpoint, when set, replaces the endpoint in redirect URLs
	// handed to clients.
	RedirectEndpoint string `yaml:"redirectendpoint"`
}

// Delete configures deletes (storage.delete).
type Delete struct {
	// Enabled allows DELETE of blobs, manifests and tags.
	Enabled bool `yaml:"enabled"`
}

// Redirect configures blob download redirects (storage.redirect).
type Redirect struct {
	// Disable serves blob content through the registry instead of
	// redirecting to a driver URL.
	Disable bool `yaml:"disable"`
}

// HTTP configures the HTTP server (http.*).
type HTTP struct {
	// Addr is the listen address, host:port (a socket path when Net is unix).
	Addr string `yaml:"addr"`
	// Net is tcp (the default when empty) or unix.
	Net string `yaml:"net"`
	// Secret signs state handed to clients (upload sessions). When empty a
	// random one is generated at start, which breaks uploads balanced over
	// several instances.
	Secret string `yaml:"secret"`
	// TLS enables HTTPS.
	TLS TLS `yaml:"tls"`
}

// TLS configures HTTPS (http.tls).
type TLS struct {
	// Certificate is the path of the PEM certificate (chain).
	Certificate string `yaml:"certificate"`
	// Key is the path of the PEM private key.
	Key string `yaml:"key"`
	// ClientCAs are PEM files of CAs; when set, clients must present a
	// certificate signed by one of them.
	ClientCAs []string `yaml:"clientcas"`
}

// Enabled reports whether a certificate or key is configured.
func (t TLS) Enabled() bool { return t.Certificate != "" || t.Key != "" }

// Auth configures authentication (auth.*). At most one type is set.
type Auth struct {
	// Htpasswd enables basic auth against an htpasswd file.
	Htpasswd *Htpasswd `yaml:"htpasswd"`
	// Token enables bearer token auth from an external token server.
	Token *Token `yaml:"token"`
}

// Htpasswd configures basic auth (auth.htpasswd).
type Htpasswd struct {
	// Realm is the realm of the basic auth challenge.
	Realm string `yaml:"realm"`
	// Path is the htpasswd file (bcrypt entries).
	Path string `yaml:"path"`
}

// Token configures token auth (auth.token).
type Token struct {
	// Realm is the token server URL announced in challenges.
	Realm string `yaml:"realm"`
	// Service is the service name tokens must be issued for.
	Service string `yaml:"service"`
	// Issuer is the expected token issuer.
	Issuer string `yaml:"issuer"`
	// RootCertBundle is the PEM bundle whose keys verify tokens.
	RootCertBundle string `yaml:"rootcertbundle"`
}

// Type returns the name of the configured auth type ("htpasswd" or
// "token"), or "" when none (or, in an invalid Config, several) is set.
func (a Auth) Type() string {
	switch t := a.types(); len(t) {
	case 1:
		return t[0]
	default:
		return ""
	}
}

func (a Auth) types() []string {
	var t []string
	if a.Htpasswd != nil {
		t = append(t, "htpasswd")
	}
	if a.Token != nil {
		t = append(t, "token")
	}
	return t
}

// Drivers returns the names of the configured storage drivers; a valid
// Config has exactly one.
func (s Storage) Drivers() []string {
	var d []string
	if s.Filesystem != nil {
		d = append(d, DriverFilesystem)
	}
	if s.InMemory != nil {
		d = append(d, DriverInMemory)
	}
	if s.S3 != nil {
		d = append(d, DriverS3)
	}
	return d
}

// Driver returns the name of the configured storage driver, or "" unless
// exactly one is configured.
func (s Storage) Driver() string {
	if d := s.Drivers(); len(d) == 1 {
		return d[0]
	}
	return ""
}

// clearDrivers deselects every driver.
func (s *Storage) clearDrivers() {
	s.Filesystem, s.InMemory, s.S3 = nil, nil, nil
}

// selectDriver makes name selected, with its defaults if it was not already.
func (s *Storage) selectDriver(name string) {
	switch name {
	case DriverFilesystem:
		if s.Filesystem == nil {
			s.Filesystem = new(Filesystem)
			s.Filesystem.setDefaults()
		}
	case DriverInMemory:
		if s.InMemory == nil {
			s.InMemory = new(InMemory)
		}
	case DriverS3:
		if s.S3 == nil {
			s.S3 = new(S3)
			s.S3.setDefaults()
		}
	}
}

// setDefaults fills a newly selected filesystem section.
func (f *Filesystem) setDefaults() { f.RootDirectory = DefaultFilesystemRoot }

// setDefaults fills a newly selected S3 section.
func (s *S3) setDefaults() { s.Secure = true }

// SlogLevel maps Level to a slog.Level. Case is ignored and "warning" is
// accepted for warn.
func (l Log) SlogLevel() (slog.Level, error) {
	switch strings.ToLower(l.Level) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", l.Level)
}

// JSON reports whether the formatter asks for JSON lines.
func (l Log) JSON() bool {
	f := strings.ToLower(l.Formatter)
	return f == "json" || f == "logstash"
}

// Default returns the embedded default configuration.
func Default() *Config {
	c := new(Config)
	if err := yaml.Unmarshal(defaultYAML, c); err != nil {
		panic("config: embedded default.yml: " + err.Error())
	}
	return c
}

// Load returns the configuration made of the embedded defaults, the YAML
// file at path (skipped when path is ""), and the REGISTRY_* variables of
// environ (as from os.Environ; the last of duplicate names wins). It does
// not call Validate.
//
// A file or environment that selects a storage driver replaces the
// default filesystem driver rather than adding to it; REGISTRY_STORAGE=<driver>
// selects that driver alone. When storage.s3 is selected, its accesskey,
// secretkey and region fall back to AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_REGION (then AWS_DEFAULT_REGION).
func Load(path string, environ []string) (*Config, error) {
	cfg := Default()
	fileDriver := false
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		fileDriver, err = cfg.mergeYAML(data)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	env := envMap(environ)
	if err := cfg.applyEnv(env, fileDriver); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if s3 := cfg.Storage.S3; s3 != nil {
		if s3.AccessKey == "" {
			s3.AccessKey = env["AWS_ACCESS_KEY_ID"]
		}
		if s3.SecretKey == "" {
			s3.SecretKey = env["AWS_SECRET_ACCESS_KEY"]
		}
		if s3.Region == "" {
			s3.Region = cmp.Or(env["AWS_REGION"], env["AWS_DEFAULT_REGION"])
		}
	}
	return cfg, nil
}

// mergeYAML decodes a configuration document on top of c and reports
// whether it selected a storage driver.
func (c *Config) mergeYAML(data []byte) (driverSelected bool, err error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return false, err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return false, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return false, nil
	}
	if root.Kind != yaml.MappingNode {
		return false, fmt.Errorf("line %d: the configuration must be a mapping", root.Line)
	}

	// storage: a driver named in the file replaces the default one.
	storage := mapValue(root, "storage")
	var drivers []string
	if storage != nil {
		switch {
		case storage.Kind == yaml.ScalarNode && storage.ShortTag() == "!!str":
			// distribution's short form: "storage: inmemory".
			drivers = []string{storage.Value}
			removeKey(root, "storage")
		case storage.Kind == yaml.MappingNode:
			for _, k := range mapKeys(storage) {
				if !slices.Contains(storageNonDrivers, k) {
					drivers = append(drivers, k)
				}
			}
		}
		for _, d := range drivers {
			if !slices.Contains(driverNames, d) {
				return false, fmt.Errorf("storage.%s: unsupported storage driver (supported: %s)", d, strings.Join(driverNames, ", "))
			}
		}
		if len(drivers) > 0 {
			c.Storage.clearDrivers()
			for _, d := range drivers {
				c.Storage.selectDriver(d) // defaults, merged over below
			}
		}
	}
	if auth := mapValue(root, "auth"); auth != nil && auth.Kind == yaml.MappingNode {
		for _, k := range mapKeys(auth) {
			if !slices.Contains(authTypes, k) {
				return false, fmt.Errorf("auth.%s: unsupported auth type (supported: %s)", k, strings.Join(authTypes, ", "))
			}
		}
	}
	if tls := mapValue(mapValue(root, "http"), "tls"); tls != nil && mapValue(tls, "letsencrypt") != nil {
		return false, errors.New("http.tls.letsencrypt: not supported; configure http.tls.certificate and http.tls.key")
	}

	if err := root.Decode(c); err != nil {
		return false, err
	}

	// A section given as an empty value ("inmemory:") decodes to nil:
	// presence alone selects it.
	for _, d := range drivers {
		c.Storage.selectDriver(d)
	}
	if auth := mapValue(root, "auth"); auth != nil && auth.Kind == yaml.MappingNode {
		for _, k := range mapKeys(auth) {
			switch {
			case k == "htpasswd" && c.Auth.Htpasswd == nil:
				c.Auth.Htpasswd = new(Htpasswd)
			case k == "token" && c.Auth.Token == nil:
				c.Auth.Token = new(Token)
			}
		}
	}
	return len(drivers) > 0, nil
}

// mapValue returns the value of key in the mapping node m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// mapKeys returns the keys of the mapping node m.
func mapKeys(m *yaml.Node) []string {
	var keys []string
	for i := 0; i+1 < len(m.Content); i += 2 {
		keys = append(keys, m.Content[i].Value)
	}
	return keys
}

// removeKey deletes key from the mapping node m.
func removeKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = slices.Delete(m.Content, i, i+2)
			return
		}
	}
}

// Validate checks the configuration and returns every problem found, each
// naming its key.
func (c *Config) Validate() error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	if c.Version != "0.1" {
		fail("version: unsupported configuration version %q (want 0.1)", c.Version)
	}

	if _, err := c.Log.SlogLevel(); err != nil {
		errs = append(errs, err)
	}
	switch strings.ToLower(c.Log.Formatter) {
	case "", "text", "json", "logstash":
	default:
		fail("log.formatter: %q is not one of text, json", c.Log.Formatter)
	}

	switch d := c.Storage.Drivers(); len(d) {
	case 0:
		fail("storage: no storage driver configured (set one of storage.%s)", strings.Join(driverNames, ", storage."))
	case 1:
	default:
		fail("storage: exactly one storage driver must be configured, found %s (with REGISTRY_* variables, set REGISTRY_STORAGE=<driver> to select one)",
			"storage."+strings.Join(d, " and storage."))
	}
	if fs := c.Storage.Filesystem; fs != nil && fs.RootDirectory == "" {
		fail("storage.filesystem.rootdirectory: must be set")
	}
	if s3 := c.Storage.S3; s3 != nil {
		if s3.Bucket == "" {
			fail("storage.s3.bucket: must be set")
		}
		if s3.ChunkSize != 0 && s3.ChunkSize < MinS3ChunkSize {
			fail("storage.s3.chunksize: %d is less than the S3 minimum part size %d (5 MiB)", s3.ChunkSize, MinS3ChunkSize)
		}
	}

	switch c.HTTP.Net {
	case "", "tcp":
		if err := checkHostPort(c.HTTP.Addr); err != nil {
			fail("http.addr: %v", err)
		}
	case "unix":
		if c.HTTP.Addr == "" {
			fail("http.addr: must be a socket path when http.net is unix")
		}
	default:
		fail("http.net: %q is not one of tcp, unix", c.HTTP.Net)
	}
	switch t := c.HTTP.TLS; {
	case t.Certificate != "" && t.Key == "":
		fail("http.tls.key: must be set when http.tls.certificate is set")
	case t.Certificate == "" && t.Key != "":
		fail("http.tls.certificate: must be set when http.tls.key is set")
	case t.Certificate == "" && len(t.ClientCAs) > 0:
		fail("http.tls.clientcas: requires http.tls.certificate and http.tls.key")
	}

	if t := c.Auth.types(); len(t) > 1 {
		fail("auth: only one auth type may be configured, found auth.%s", strings.Join(t, " and auth."))
	}
	if h := c.Auth.Htpasswd; h != nil {
		if h.Realm == "" {
			fail("auth.htpasswd.realm: must be set")
		}
		if h.Path == "" {
			fail("auth.htpasswd.path: must be set")
		}
	}
	if t := c.Auth.Token; t != nil {
		for _, f := range []struct{ key, v string }{
			{"realm", t.Realm}, {"service", t.Service}, {"issuer", t.Issuer}, {"rootcertbundle", t.RootCertBundle},
		} {
			if f.v == "" {
				fail("auth.token.%s: must be set", f.key)
			}
		}
	}
	return errors.Join(errs...)
}

// checkHostPort accepts host:port with an empty host (all interfaces) and a
// numeric port (0 picks a free one).
func checkHostPort(addr string) error {
	if addr == "" {
		return errors.New("must be set (host:port)")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	return nil
}
