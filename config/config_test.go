package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// registry2Config is the shape of a real registry:2 deployment: the image's
// stock config.yml plus commonly used extras Berth ignores.
const registry2Config = `version: 0.1
log:
  accesslog:
    disabled: true
  level: debug
  formatter: json
  fields:
    service: registry
    environment: staging
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
    readonly:
      enabled: false
  delete:
    enabled: true
  redirect:
    disable: false
  tag:
    concurrencylimit: 8
http:
  addr: :5000
  secret: asecretforlocaldevelopment
  host: https://registry.example.com
  relativeurls: false
  draintimeout: 60s
  headers:
    X-Content-Type-Options: [nosniff]
  http2:
    disabled: false
  debug:
    addr: localhost:5001
    prometheus:
      enabled: true
      path: /metrics
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      disabled: false
      url: https://my.listener.com/event
      headers: <http.Header>
      timeout: 1s
      threshold: 10
      backoff: 1s
redis:
  addr: localhost:6379
validation:
  manifests:
    urls:
      allow:
        - ^https?://([^/]+\.)*example\.com/
`

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	for _, name := range []string{"Default", "Load"} {
		t.Run(name, func(t *testing.T) {
			c := Default()
			if name == "Load" {
				var err error
				if c, err = Load("", []string{"PATH=/bin", "HOME=/root"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("defaults do not validate: %v", err)
			}
			want := &Config{
				Version: "0.1",
				Log:     Log{Level: "info", Formatter: "text"},
				Storage: Storage{
					Filesystem: &Filesystem{RootDirectory: "./data"},
					Delete:     Delete{Enabled: true},
					Redirect:   Redirect{Disable: true},
				},
				HTTP: HTTP{Addr: "127.0.0.1:5000"},
			}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got %+v\nwant %+v", c, want)
			}
			if c.Storage.Driver() != DriverFilesystem {
				t.Errorf("Driver() = %q", c.Storage.Driver())
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "empty file keeps defaults",
			file: "",
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c, Default()) {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "partial override merges with defaults",
			file: "http:\n  addr: 0.0.0.0:6000\nlog:\n  level: warn\n",
			check: func(t *testing.T, c *Config) {
				if c.HTTP.Addr != "0.0.0.0:6000" || c.Log.Level != "warn" {
					t.Errorf("overrides not applied: %+v", c)
				}
				if c.Log.Formatter != "text" || c.Storage.Filesystem.RootDirectory != "./data" || !c.Storage.Delete.Enabled {
					t.Errorf("defaults lost: %+v", c)
				}
			},
		},
		{
			name: "delete can be disabled",
			file: "storage:\n  delete:\n    enabled: false\n",
			check: func(t *testing.T, c *Config) {
				if c.Storage.Delete.Enabled || c.Storage.Driver() != DriverFilesystem {
					t.Errorf("got %+v", c.Storage)
				}
			},
		},
		{
			name: "inmemory with empty value replaces default filesystem",
			file: "storage:\n  inmemory:\n",
			check: func(t *testing.T, c *Config) {
				if d := c.Storage.Drivers(); !slices.Equal(d, []string{DriverInMemory}) {
					t.Errorf("drivers = %v", d)
				}
				if !c.Storage.Delete.Enabled {
					t.Error("storage.delete default lost")
				}
			},
		},
		{
			name: "short form storage: inmemory",
			file: "storage: inmemory\n",
			check: func(t *testing.T, c *Config) {
				if d := c.Storage.Drivers(); !slices.Equal(d, []string{DriverInMemory}) {
					t.Errorf("drivers = %v", d)
				}
			},
		},
		{
			name: "filesystem without rootdirectory gets distribution's default",
			file: "storage:\n  filesystem: {}\n",
			check: func(t *testing.T, c *Config) {
				if c.Storage.Filesystem.RootDirectory != DefaultFilesystemRoot {
					t.Errorf("rootdirectory = %q", c.Storage.Filesystem.RootDirectory)
				}
			},
		},
		{
			name: "s3 only replaces default filesystem",
			file: `storage:
  s3:
    accesskey: AKIA
    secretkey: SECRET
    region: eu-west-1
    regionendpoint: http://minio:9000
    bucket: images
    forcepathstyle: true
    rootdirectory: /berth
    chunksize: 10485760
    redirectendpoint: https://cdn.example.com
`,
			check: func(t *testing.T, c *Config) {
				want := &S3{
					AccessKey: "AKIA", SecretKey: "SECRET", Region: "eu-west-1",
					RegionEndpoint: "http://minio:9000", Bucket: "images", Secure: true,
					ForcePathStyle: true, RootDirectory: "/berth", ChunkSize: 10 << 20,
					RedirectEndpoint: "https://cdn.example.com",
				}
				if c.Storage.Filesystem != nil || !reflect.DeepEqual(c.Storage.S3, want) {
					t.Errorf("got fs=%v s3=%+v", c.Storage.Filesystem, c.Storage.S3)
				}
			},
		},
		{
			name: "s3 secure false",
			file: "storage:\n  s3:\n    bucket: b\n    secure: false\n",
			check: func(t *testing.T, c *Config) {
				if c.Storage.S3.Secure {
					t.Error("secure: false not applied")
				}
			},
		},
		{
			name: "tls and auth",
			file: `http:
  tls:
    certificate: /certs/domain.crt
    key: /certs/domain.key
    clientcas:
      - /certs/ca.pem
auth:
  htpasswd:
    realm: Registry Realm
    path: /auth/htpasswd
`,
			check: func(t *testing.T, c *Config) {
				want := TLS{Certificate: "/certs/domain.crt", Key: "/certs/domain.key", ClientCAs: []string{"/certs/ca.pem"}}
				if !reflect.DeepEqual(c.HTTP.TLS, want) || !c.HTTP.TLS.Enabled() {
					t.Errorf("tls = %+v", c.HTTP.TLS)
				}
				if c.Auth.Type() != "htpasswd" || *c.Auth.Htpasswd != (Htpasswd{Realm: "Registry Realm", Path: "/auth/htpasswd"}) {
					t.Errorf("auth = %+v", c.Auth)
				}
			},
		},
		{
			name: "token auth",
			file: `auth:
  token:
    realm: https://auth.example.com/token
    service: registry.example.com
    issuer: auth.example.com
    rootcertbundle: /certs/bundle.pem
`,
			check: func(t *testing.T, c *Config) {
				if c.Auth.Type() != "token" || c.Auth.Token.RootCertBundle != "/certs/bundle.pem" {
					t.Errorf("auth = %+v", c.Auth)
				}
			},
		},
		{
			name: "real registry:2 config",
			file: registry2Config,
			check: func(t *testing.T, c *Config) {
				if c.HTTP.Addr != ":5000" || c.HTTP.Secret != "asecretforlocaldevelopment" {
					t.Errorf("http = %+v", c.HTTP)
				}
				if c.Storage.Driver() != DriverFilesystem || c.Storage.Filesystem.RootDirectory != "/var/lib/registry" {
					t.Errorf("storage = %+v", c.Storage)
				}
				if c.Log.Level != "debug" || !c.Log.JSON() || !c.Log.AccessLog.Disabled {
					t.Errorf("log = %+v", c.Log)
				}
				if c.Log.Fields["service"] != "registry" {
					t.Errorf("log.fields = %v", c.Log.Fields)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeFile(t, tt.file), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		want string // substring of the error
	}{
		{"syntax", "http:\n  addr: [\n", "yaml"},
		{"wrong type", "storage:\n  delete:\n    enabled: perhaps\n", "line 3"},
		{"not a mapping", "- a\n- b\n", "must be a mapping"},
		{"unsupported driver", "storage:\n  azure:\n    accountname: x\n", "storage.azure: unsupported storage driver"},
		{"unsupported short driver", "storage: gcs\n", "storage.gcs: unsupported storage driver"},
		{"unsupported auth", "auth:\n  silly:\n    realm: x\n", "auth.silly: unsupported auth type"},
		{"letsencrypt", "http:\n  tls:\n    letsencrypt:\n      cachefile: /x\n", "http.tls.letsencrypt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tt.file), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yml"), nil); err == nil {
		t.Error("missing file: no error")
	}
}

func TestEnvOverrides(t *testing.T) {
	tests := []struct {
		name  string
		file  string // "" for no file
		env   []string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "scalars of each kind",
			env: []string{
				"REGISTRY_HTTP_ADDR=:5001",
				"REGISTRY_HTTP_SECRET=s3cret",
				"REGISTRY_LOG_LEVEL=debug",
				"REGISTRY_LOG_ACCESSLOG_DISABLED=true",
				"REGISTRY_STORAGE_DELETE_ENABLED=false",
				"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/srv/registry",
				"REGISTRY_HTTP_TLS_CERTIFICATE=/c.pem",
				"REGISTRY_HTTP_TLS_KEY=/k.pem",
				"REGISTRY_HTTP_TLS_CLIENTCAS=[/a.pem, /b.pem]",
			},
			check: func(t *testing.T, c *Config) {
				if c.HTTP.Addr != ":5001" || c.HTTP.Secret != "s3cret" || c.Log.Level != "debug" ||
					!c.Log.AccessLog.Disabled || c.Storage.Delete.Enabled ||
					c.Storage.Filesystem.RootDirectory != "/srv/registry" ||
					!slices.Equal(c.HTTP.TLS.ClientCAs, []string{"/a.pem", "/b.pem"}) {
					t.Errorf("got %+v / %+v", c, c.Storage.Filesystem)
				}
			},
		},
		{
			name: "env wins over file, last duplicate wins",
			file: "http:\n  addr: :6000\nlog:\n  level: error\n",
			env:  []string{"REGISTRY_HTTP_ADDR=:7000", "REGISTRY_HTTP_ADDR=:7001"},
			check: func(t *testing.T, c *Config) {
				if c.HTTP.Addr != ":7001" || c.Log.Level != "error" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "unknown REGISTRY_ variables are ignored",
			env:  []string{"REGISTRY_PORT=tcp://10.0.0.2:5000", "REGISTRY_PORT_5000_TCP_ADDR=10.0.0.2", "REGISTRY_CONFIGURATION_PATH=/x"},
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c, Default()) {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "s3 variables replace the default filesystem",
			env: []string{
				"REGISTRY_STORAGE_S3_BUCKET=images",
				"REGISTRY_STORAGE_S3_CHUNKSIZE=10485760",
				"REGISTRY_STORAGE_S3_FORCEPATHSTYLE=true",
				"AWS_ACCESS_KEY_ID=AKIA",
				"AWS_SECRET_ACCESS_KEY=SECRET",
				"AWS_DEFAULT_REGION=us-east-2",
			},
			check: func(t *testing.T, c *Config) {
				want := &S3{AccessKey: "AKIA", SecretKey: "SECRET", Region: "us-east-2", Bucket: "images",
					Secure: true, ForcePathStyle: true, ChunkSize: 10 << 20}
				if c.Storage.Filesystem != nil || !reflect.DeepEqual(c.Storage.S3, want) {
					t.Errorf("got fs=%v s3=%+v", c.Storage.Filesystem, c.Storage.S3)
				}
			},
		},
		{
			name: "explicit s3 credentials win over AWS_*",
			file: "storage:\n  s3:\n    bucket: b\n    accesskey: FILE\n",
			env:  []string{"AWS_ACCESS_KEY_ID=ENV", "AWS_REGION=eu-north-1", "AWS_DEFAULT_REGION=us-east-1", "REGISTRY_STORAGE_S3_SECRETKEY=FROMREG"},
			check: func(t *testing.T, c *Config) {
				if s := c.Storage.S3; s.AccessKey != "FILE" || s.Region != "eu-north-1" || s.SecretKey != "FROMREG" {
					t.Errorf("s3 = %+v", s)
				}
			},
		},
		{
			name: "REGISTRY_STORAGE selects a driver over the file's",
			file: registry2Config,
			env:  []string{"REGISTRY_STORAGE=s3", "REGISTRY_STORAGE_S3_BUCKET=images"},
			check: func(t *testing.T, c *Config) {
				if d := c.Storage.Drivers(); !slices.Equal(d, []string{DriverS3}) || c.Storage.S3.Bucket != "images" {
					t.Errorf("drivers = %v, s3 = %+v", d, c.Storage.S3)
				}
			},
		},
		{
			name: "REGISTRY_STORAGE=inmemory",
			env:  []string{"REGISTRY_STORAGE=inmemory"},
			check: func(t *testing.T, c *Config) {
				if d := c.Storage.Drivers(); !slices.Equal(d, []string{DriverInMemory}) {
					t.Errorf("drivers = %v", d)
				}
			},
		},
		{
			name: "REGISTRY_STORAGE=filesystem keeps the file's root",
			file: "storage:\n  filesystem:\n    rootdirectory: /srv\n",
			env:  []string{"REGISTRY_STORAGE=filesystem"},
			check: func(t *testing.T, c *Config) {
				if c.Storage.Driver() != DriverFilesystem || c.Storage.Filesystem.RootDirectory != "/srv" {
					t.Errorf("storage = %+v", c.Storage)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			c, err := Load(path, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestEnvErrors(t *testing.T) {
	tests := []struct {
		env  string
		want string
	}{
		{"REGISTRY_STORAGE_DELETE_ENABLED=maybe", "REGISTRY_STORAGE_DELETE_ENABLED (storage.delete.enabled)"},
		{"REGISTRY_STORAGE_S3_CHUNKSIZE=5MB", "REGISTRY_STORAGE_S3_CHUNKSIZE (storage.s3.chunksize)"},
		{"REGISTRY_LOG_ACCESSLOG_DISABLED=", "REGISTRY_LOG_ACCESSLOG_DISABLED"},
		{"REGISTRY_STORAGE=azure", "REGISTRY_STORAGE: unsupported storage driver"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			_, err := Load("", []string{tt.env})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestEnvNames pins the variable names of distribution's documentation and
// checks that every leaf of Config is reachable from the environment.
func TestEnvNames(t *testing.T) {
	names := EnvNames()
	for _, want := range []string{
		"REGISTRY_VERSION",
		"REGISTRY_LOG_LEVEL", "REGISTRY_LOG_FORMATTER", "REGISTRY_LOG_ACCESSLOG_DISABLED",
		"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
		"REGISTRY_STORAGE_S3_ACCESSKEY", "REGISTRY_STORAGE_S3_SECRETKEY", "REGISTRY_STORAGE_S3_REGION",
		"REGISTRY_STORAGE_S3_REGIONENDPOINT", "REGISTRY_STORAGE_S3_BUCKET", "REGISTRY_STORAGE_S3_SECURE",
		"REGISTRY_STORAGE_S3_FORCEPATHSTYLE", "REGISTRY_STORAGE_S3_ROOTDIRECTORY", "REGISTRY_STORAGE_S3_CHUNKSIZE",
		"REGISTRY_STORAGE_S3_REDIRECTENDPOINT",
		"REGISTRY_STORAGE_DELETE_ENABLED", "REGISTRY_STORAGE_REDIRECT_DISABLE",
		"REGISTRY_HTTP_ADDR", "REGISTRY_HTTP_NET", "REGISTRY_HTTP_SECRET",
		"REGISTRY_HTTP_TLS_CERTIFICATE", "REGISTRY_HTTP_TLS_KEY", "REGISTRY_HTTP_TLS_CLIENTCAS",
		"REGISTRY_AUTH_HTPASSWD_REALM", "REGISTRY_AUTH_HTPASSWD_PATH",
		"REGISTRY_AUTH_TOKEN_REALM", "REGISTRY_AUTH_TOKEN_SERVICE", "REGISTRY_AUTH_TOKEN_ISSUER",
		"REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("missing %s", want)
		}
	}
	// Every name must be settable without error.
	for _, n := range names {
		v := "x"
		switch {
		case strings.HasSuffix(n, "_ENABLED"), strings.HasSuffix(n, "_DISABLED"), strings.HasSuffix(n, "_DISABLE"),
			strings.HasSuffix(n, "_SECURE"), strings.HasSuffix(n, "_FORCEPATHSTYLE"), strings.HasSuffix(n, "_SYNC"):
			v = "true"
		case strings.HasSuffix(n, "_CHUNKSIZE"):
			v = "6000000"
		}
		if _, err := Load("", []string{n + "=" + v}); err != nil {
			t.Errorf("%s=%s: %v", n, v, err)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   string // "" means valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"port 0", func(c *Config) { c.HTTP.Addr = "127.0.0.1:0" }, ""},
		{"all interfaces", func(c *Config) { c.HTTP.Addr = ":5000" }, ""},
		{"ipv6", func(c *Config) { c.HTTP.Addr = "[::1]:5000" }, ""},
		{"unix socket", func(c *Config) { c.HTTP.Net = "unix"; c.HTTP.Addr = "/run/registry.sock" }, ""},
		{"level case-insensitive", func(c *Config) { c.Log.Level = "WARN" }, ""},
		{"logstash formatter", func(c *Config) { c.Log.Formatter = "logstash" }, ""},
		{"inmemory", func(c *Config) { c.Storage.Filesystem = nil; c.Storage.InMemory = &InMemory{} }, ""},
		{"s3 minimal", func(c *Config) { c.Storage.Filesystem = nil; c.Storage.S3 = &S3{Bucket: "b"} }, ""},
		{"s3 chunk 5MiB", func(c *Config) { c.Storage.Filesystem = nil; c.Storage.S3 = &S3{Bucket: "b", ChunkSize: 5 << 20} }, ""},
		{"tls", func(c *Config) { c.HTTP.TLS = TLS{Certificate: "c", Key: "k"} }, ""},

		{"bad version", func(c *Config) { c.Version = "0.2" }, "version:"},
		{"bad level", func(c *Config) { c.Log.Level = "verbose" }, "log.level:"},
		{"bad formatter", func(c *Config) { c.Log.Formatter = "xml" }, "log.formatter:"},
		{"no driver", func(c *Config) { c.Storage.Filesystem = nil }, "storage: no storage driver"},
		{"two drivers", func(c *Config) { c.Storage.InMemory = &InMemory{} }, "storage.filesystem and storage.inmemory"},
		{"empty root", func(c *Config) { c.Storage.Filesystem.RootDirectory = "" }, "storage.filesystem.rootdirectory:"},
		{"s3 no bucket", func(c *Config) { c.Storage.Filesystem = nil; c.Storage.S3 = &S3{} }, "storage.s3.bucket:"},
		{"s3 small chunk", func(c *Config) { c.Storage.Filesystem = nil; c.Storage.S3 = &S3{Bucket: "b", ChunkSize: 1 << 20} }, "storage.s3.chunksize:"},
		{"s3 negative chunk", func(c *Config) { c.Storage.Filesystem = nil; c.Storage.S3 = &S3{Bucket: "b", ChunkSize: -1} }, "storage.s3.chunksize:"},
		{"empty addr", func(c *Config) { c.HTTP.Addr = "" }, "http.addr:"},
		{"addr no port", func(c *Config) { c.HTTP.Addr = "localhost" }, "http.addr:"},
		{"addr bad port", func(c *Config) { c.HTTP.Addr = "localhost:http5" }, "http.addr:"},
		{"addr port range", func(c *Config) { c.HTTP.Addr = ":70000" }, "http.addr:"},
		{"bad net", func(c *Config) { c.HTTP.Net = "udp" }, "http.net:"},
		{"cert without key", func(c *Config) { c.HTTP.TLS.Certificate = "c" }, "http.tls.key:"},
		{"key without cert", func(c *Config) { c.HTTP.TLS.Key = "k" }, "http.tls.certificate:"},
		{"clientcas without tls", func(c *Config) { c.HTTP.TLS.ClientCAs = []string{"ca"} }, "http.tls.clientcas:"},
		{"htpasswd incomplete", func(c *Config) { c.Auth.Htpasswd = &Htpasswd{Realm: "r"} }, "auth.htpasswd.path:"},
		{"token incomplete", func(c *Config) { c.Auth.Token = &Token{Realm: "r", Service: "s", Issuer: "i"} }, "auth.token.rootcertbundle:"},
		{"two auths", func(c *Config) {
			c.Auth.Htpasswd = &Htpasswd{Realm: "r", Path: "p"}
			c.Auth.Token = &Token{Realm: "r", Service: "s", Issuer: "i", RootCertBundle: "b"}
		}, "auth: only one auth type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.HTTP.Addr = "nope"
	c.Log.Level = "loud"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "http.addr:") || !strings.Contains(err.Error(), "log.level:") {
		t.Fatalf("err = %v", err)
	}
}

func TestSlogLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn,
		"warning": slog.LevelWarn, "Error": slog.LevelError,
	} {
		got, err := Log{Level: in}.SlogLevel()
		if err != nil || got != want {
			t.Errorf("%q: got %v, %v; want %v", in, got, err, want)
		}
	}
}
