package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestFileStoreDockerConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	writeFile(t, path, `{
	"auths": {
		"https://index.docker.io/v1/": {"auth": "`+b64("hubuser:hub:pass:with:colons")+`"},
		"registry.example:5000": {"auth": "`+b64("alice:s3cret")+`"},
		"https://ghcr.io/v2/": {"username": "bob", "password": "tok"},
		"quay.io": {"auth": "`+b64("robot:")+`", "identitytoken": "refresh-123"},
		"unpadded.example": {"auth": "`+base64.RawStdEncoding.EncodeToString([]byte("u:p1"))+`"},
		"empty.example": {}
	},
	"credsStore": "desktop",
	"credHelpers": {"gcr.io": "gcloud"}
}`)
	s := NewFileStore(path)
	for reg, want := range map[string][2]string{
		"docker.io":             {"hubuser", "hub:pass:with:colons"},
		"index.docker.io":       {"hubuser", "hub:pass:with:colons"},
		"registry.example:5000": {"alice", "s3cret"},
		"ghcr.io":               {"bob", "tok"},
		"quay.io":               {IdentityTokenUsername, "refresh-123"},
		"unpadded.example":      {"u", "p1"},
		"empty.example":         {"", ""},
		"gcr.io":                {"", ""}, // credential helpers are not run
		"registry.example":      {"", ""}, // another port is another registry
		"nowhere.example":       {"", ""},
	} {
		u, p, err := s.Get(reg)
		if err != nil || u != want[0] || p != want[1] {
			t.Errorf("Get(%q) = %q, %q, %v; want %q", reg, u, p, err, want)
		}
	}
	// Missing and empty files are no credentials, not errors.
	for _, p := range []string{filepath.Join(t.TempDir(), "missing.json"), ""} {
		if u, _, err := NewFileStore(p).Get("docker.io"); err != nil || u != "" {
			t.Errorf("missing file %q: %q, %v", p, u, err)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	writeFile(t, bad, `{"auths": {"x.io": {"auth": "!!notbase64"}}}`)
	if _, _, err := NewFileStore(bad).Get("x.io"); err == nil {
		t.Error("bad base64 accepted")
	}
	writeFile(t, bad, `{"auths": `)
	if _, _, err := NewFileStore(bad).Get("x.io"); err == nil {
		t.Error("malformed JSON accepted")
	} else {
		mustContain(t, err, bad)
	}
}

func TestFileStoreSaveErase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub", "dir")
	path := filepath.Join(dir, "auth.json")
	s := NewFileStore(path)
	if err := s.Save("docker.io", "hub", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := s.Save("127.0.0.1:5000", "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if err := s.Save("https://127.0.0.1:5000/v2/", "alice", "changed"); err != nil {
		t.Fatal(err)
	}
	if err := s.Save("quay.io", IdentityTokenUsername, "refresh"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v", fi.Mode(), err)
	}
	var doc struct {
		Auths map[string]map[string]string `json:"auths"`
	}
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Auths) != 3 || doc.Auths["https://index.docker.io/v1/"]["auth"] != b64("hub:pw") ||
		doc.Auths["127.0.0.1:5000"]["auth"] != b64("alice:changed") || doc.Auths["quay.io"]["identitytoken"] != "refresh" {
		t.Fatalf("saved file: %s", b)
	}
	if u, p, err := s.Get("127.0.0.1:5000"); err != nil || u != "alice" || p != "changed" {
		t.Errorf("Get after Save = %q %q %v", u, p, err)
	}
	if err := s.Erase("127.0.0.1:5000"); err != nil {
		t.Fatal(err)
	}
	if u, _, _ := s.Get("127.0.0.1:5000"); u != "" {
		t.Error("Erase left credentials")
	}
	if err := s.Erase("127.0.0.1:5000"); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("second Erase: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}

	// Saving into Docker's config keeps what pull-run does not know about.
	docker := filepath.Join(t.TempDir(), "config.json")
	writeFile(t, docker, `{"auths":{"other.io":{"auth":"`+b64("o:p")+`","email":"x@y"}},"credsStore":"desktop","psFormat":"table"}`)
	if err := NewFileStore(docker).Save("new.io", "n", "p"); err != nil {
		t.Fatal(err)
	}
	var kept map[string]any
	b, _ = os.ReadFile(docker)
	json.Unmarshal(b, &kept)
	auths, _ := kept["auths"].(map[string]any)
	other, _ := auths["other.io"].(map[string]any)
	if kept["credsStore"] != "desktop" || kept["psFormat"] != "table" || other["email"] != "x@y" || auths["new.io"] == nil {
		t.Errorf("other keys lost: %s", b)
	}
}

func TestChainStoreAndDefaults(t *testing.T) {
	dir := t.TempDir()
	own := NewFileStore(filepath.Join(dir, "own.json"))
	dockerDir := filepath.Join(dir, "docker")
	t.Setenv("DOCKER_CONFIG", dockerDir)
	if got := DockerConfigPath(); got != filepath.Join(dockerDir, "config.json") {
		t.Fatalf("DockerConfigPath = %q", got)
	}
	writeFile(t, filepath.Join(dockerDir, "config.json"), `{"auths":{"both.io":{"auth":"`+b64("docker:d")+`"},"docker-only.io":{"auth":"`+b64("dk:d")+`"}}}`)
	if err := own.Save("both.io", "own", "o"); err != nil {
		t.Fatal(err)
	}
	chain := DefaultCredentials(own.Path())
	for reg, want := range map[string]string{"both.io": "own", "docker-only.io": "dk", "none.io": ""} {
		if u, _, err := chain.Get(reg); err != nil || u != want {
			t.Errorf("chain.Get(%q) = %q, %v; want %q", reg, u, err, want)
		}
	}
	failing := CredentialFunc(func(string) (string, string, error) { return "", "", errors.New("broken store") })
	if _, _, err := (ChainStore{nil, failing, own}).Get("both.io"); err == nil {
		t.Error("store error swallowed")
	}

	// A client reading the file store authenticates with it.
	blob := []byte("b")
	host, _ := basicRegistry(t, blob, "")
	if err := own.Save(host, "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, Options{Credentials: DefaultCredentials(own.Path())})
	if err := c.Ping(context.Background(), host); err != nil {
		t.Fatalf("Ping with saved credentials: %v", err)
	}
}
