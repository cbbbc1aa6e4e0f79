package client

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CredentialStore supplies credentials per registry. registry is a registry
// name as in Reference.Registry ("docker.io", "ghcr.io", "host:5000").
// Get returns empty strings and no error when it has nothing for the
// registry; the client then goes anonymous. A user name of
// IdentityTokenUsername marks secret as an identity (refresh) token.
type CredentialStore interface {
	Get(registry string) (username, secret string, err error)
}

// CredentialFunc adapts a function to CredentialStore; handy for fixed
// credentials (e.g. checking a login before saving it).
type CredentialFunc func(registry string) (username, secret string, err error)

// Get calls f.
func (f CredentialFunc) Get(registry string) (string, string, error) { return f(registry) }

// ErrNotLoggedIn is returned by FileStore.Erase when the file holds no
// credentials for the registry.
var ErrNotLoggedIn = errors.New("not logged in")

// dockerHubConfigKey is the key Docker uses for Docker Hub in config.json.
const dockerHubConfigKey = "https://index.docker.io/v1/"

// FileStore reads and writes credentials in Docker's config.json format:
//
//	{"auths": {"host:port": {"auth": "base64(user:password)"},
//	           "https://index.docker.io/v1/": {"auth": "…"},
//	           "ghcr.io": {"username": "u", "password": "p"},
//	           "other": {"identitytoken": "…"}}}
//
// Keys are matched by host name, so "https://host/v2/" also serves "host";
// Docker Hub is stored under "https://index.docker.io/v1/" as Docker does.
// It is used both for pull-run's own file (written by `pull-run login`) and
// to read Docker's ~/.docker/config.json. Credential helpers ("credsStore",
// "credHelpers") are not run: registries configured only through a helper
// are accessed anonymously. Other keys of the file are preserved on Save.
type FileStore struct {
	path string
}

// NewFileStore returns a store backed by the file at path; the file need
// not exist.
func NewFileStore(path string) *FileStore { return &FileStore{path: path} }

// DockerConfigPath returns the path of Docker's client configuration:
// $DOCKER_CONFIG/config.json, else ~/.docker/config.json ("" when there is
// no home directory).
func DockerConfigPath() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".docker", "config.json")
}

// Path returns the file's path.
func (s *FileStore) Path() string { return s.path }

// authEntry is one entry of "auths".
type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

// configKey is the key under which registry is saved.
func configKey(registry string) string {
	if registry == DockerHub {
		return dockerHubConfigKey
	}
	return registry
}

// read loads the file as raw JSON objects; a missing file is empty.
func (s *FileStore) read() (top map[string]json.RawMessage, auths map[string]json.RawMessage, err error) {
	top = map[string]json.RawMessage{}
	auths = map[string]json.RawMessage{}
	if s.path == "" {
		return top, auths, nil
	}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return top, auths, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return top, auths, nil
	}
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", s.path, err)
	}
	if raw, ok := top["auths"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return nil, nil, fmt.Errorf("%s: auths: %w", s.path, err)
		}
	}
	return top, auths, nil
}

// matchingKeys returns the keys of auths that name registry, the exact
// save key first.
func matchingKeys(auths map[string]json.RawMessage, registry string) []string {
	want := NormalizeRegistry(registry)
	var out []string
	if _, ok := auths[configKey(want)]; ok {
		out = append(out, configKey(want))
	}
	for k := range auths {
		if k != configKey(want) && NormalizeRegistry(k) == want {
			out = append(out, k)
		}
	}
	return out
}

// Get returns the credentials saved for registry.
func (s *FileStore) Get(registry string) (string, string, error) {
	_, auths, err := s.read()
	if err != nil {
		return "", "", err
	}
	for _, k := range matchingKeys(auths, registry) {
		var e authEntry
		if err := json.Unmarshal(auths[k], &e); err != nil {
			return "", "", fmt.Errorf("%s: auths[%q]: %w", s.path, k, err)
		}
		if e.IdentityToken != "" {
			return IdentityTokenUsername, e.IdentityToken, nil
		}
		if e.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Auth))
			if err != nil {
				dec, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(e.Auth), "="))
			}
			if err != nil {
				return "", "", fmt.Errorf("%s: auths[%q].auth is not base64: %w", s.path, k, err)
			}
			user, pass, ok := strings.Cut(string(dec), ":")
			if !ok {
				return "", "", fmt.Errorf("%s: auths[%q].auth is not user:password", s.path, k)
			}
			return user, pass, nil
		}
		if e.Username != "" || e.Password != "" {
			return e.Username, e.Password, nil
		}
	}
	return "", "", nil
}

// Save stores credentials for registry, replacing any entry for it, and
// writes the file atomically with mode 0600 (its directory is created with
// 0700). A username of IdentityTokenUsername saves secret as identitytoken.
func (s *FileStore) Save(registry, username, secret string) error {
	if s.path == "" {
		return errors.New("credential store has no file path")
	}
	registry = NormalizeRegistry(registry)
	top, auths, err := s.read()
	if err != nil {
		return err
	}
	for _, k := range matchingKeys(auths, registry) {
		delete(auths, k)
	}
	e := authEntry{Auth: base64.StdEncoding.EncodeToString([]byte(username + ":" + secret))}
	if username == IdentityTokenUsername {
		e = authEntry{IdentityToken: secret}
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	auths[configKey(registry)] = raw
	return s.write(top, auths)
}

// Erase removes the credentials for registry; ErrNotLoggedIn when there
// were none.
func (s *FileStore) Erase(registry string) error {
	registry = NormalizeRegistry(registry)
	top, auths, err := s.read()
	if err != nil {
		return err
	}
	keys := matchingKeys(auths, registry)
	if len(keys) == 0 {
		return fmt.Errorf("%w to %s", ErrNotLoggedIn, registry)
	}
	for _, k := range keys {
		delete(auths, k)
	}
	return s.write(top, auths)
}

// write replaces the file atomically: temporary file, fsync, rename.
func (s *FileStore) write(top, auths map[string]json.RawMessage) error {
	rawAuths, err := json.Marshal(auths)
	if err != nil {
		return err
	}
	top["auths"] = rawAuths
	b, err := json.MarshalIndent(top, "", "\t")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(s.path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// ChainStore asks each store in turn and returns the first credentials
// found. An error from a store (e.g. a malformed file) is returned.
type ChainStore []CredentialStore

// Get returns the first non-empty credentials for registry.
func (cs ChainStore) Get(registry string) (string, string, error) {
	for _, s := range cs {
		if s == nil {
			continue
		}
		u, p, err := s.Get(registry)
		if err != nil {
			return "", "", err
		}
		if u != "" || p != "" {
			return u, p, nil
		}
	}
	return "", "", nil
}

// DefaultCredentials returns pull-run's credential chain: the file written
// by `pull-run login` at ownPath first (skipped when ""), then Docker's
// config.json (DockerConfigPath).
func DefaultCredentials(ownPath string) ChainStore {
	var cs ChainStore
	if ownPath != "" {
		cs = append(cs, NewFileStore(ownPath))
	}
	if p := DockerConfigPath(); p != "" {
		cs = append(cs, NewFileStore(p))
	}
	return cs
}
