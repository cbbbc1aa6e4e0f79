package container

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/runner/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// The container store (daemonless: every command reads it, the monitors write it):
//
//	<root>/containers.lock                  flock(2): name reservations, creation and removal
//	<root>/names/<name>                     the id of the container that has the name
//	<root>/containers/<id>/lock             flock(2) of the container: every change of its state
//	<root>/containers/<id>/config.json      Container: fixed at create (rename changes Name)
//	<root>/containers/<id>/state.json       State: status, pids, exit, restart count
//	<root>/containers/<id>/<id>-json.log    the json-file log (and .1, .2, … rotated)
//	<root>/containers/<id>/rootfs/          overlay mount point (inside the container only)
//	<root>/containers/<id>/upper/, work/    the overlay's upper and work directories
//	<root>/containers/<id>/hostname, hosts, resolv.conf   bind-mounted on /etc/…
//	<runroot>/containers/<id>/monitor.lock  flock(2) held by the container's monitor for its life
//	<runroot>/containers/<id>/attach        unix socket the monitor serves (attach, wait)
//
// Every file is written atomically (temporary file, fsync, rename). The state root
// survives a reboot; the runtime directory (a tmpfs) does not, and nothing in it is needed
// to rebuild the truth: a monitor whose lock file is gone is a monitor that is gone.

// Store is the on-disk state of the containers of one state root and runtime directory.
type Store struct {
	root    string
	runRoot string
}

// OpenStore opens (creating the directories) the container store under the state root and
// the runtime directory.
func OpenStore(root, runRoot string) (*Store, error) {
	if root == "" || runRoot == "" {
		return nil, errors.New("container store: the state root and the runtime directory are needed")
	}
	var err error
	if root, err = filepath.Abs(root); err != nil {
		return nil, err
	}
	if runRoot, err = filepath.Abs(runRoot); err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Join(root, "containers"), filepath.Join(root, "names"), filepath.Join(runRoot, "containers")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("container store: %w", err)
		}
	}
	return &Store{root: root, runRoot: runRoot}, nil
}

// Root and RunRoot are the store's directories.
func (s *Store) Root() string    { return s.root }
func (s *Store) RunRoot() string { return s.runRoot }

// Dir is the state directory of container id.
func (s *Store) Dir(id string) string { return filepath.Join(s.root, "containers", id) }

// RunDir is the runtime directory of container id.
func (s *Store) RunDir(id string) string { return filepath.Join(s.runRoot, "containers", id) }

func (s *Store) configPath(id string) string { return filepath.Join(s.Dir(id), "config.json") }
func (s *Store) statePath(id string) string  { return filepath.Join(s.Dir(id), "state.json") }
func (s *Store) namePath(name string) string { return filepath.Join(s.root, "names", name) }
func (s *Store) monitorLockPath(id string) string {
	return filepath.Join(s.RunDir(id), "monitor.lock")
}
func (s *Store) attachPath(id string) string { return filepath.Join(s.RunDir(id), "attach") }

// LogPath is the json-file log of container id.
func (s *Store) LogPath(id string) string { return filepath.Join(s.Dir(id), id+"-json.log") }

var validIDRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// validName is Docker's container name rule.
var validNameRe = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

func validateName(name string) error {
	if !validNameRe.MatchString(name) {
		return invalidf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	return nil
}

// newID is a random 64-hex-digit id whose 12-character prefix is not a number (Docker's
// rule: a short id must not look like a pid or an index).
func newID() string {
	b := make([]byte, 32)
	for {
		if _, err := rand.Read(b); err != nil {
			panic(err)
		}
		id := hex.EncodeToString(b)
		if _, err := strconv.ParseInt(id[:12], 10, 64); err == nil {
			continue
		}
		return id
	}
}

func writeJSONAtomic(path string, v any, syncDir bool) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600, syncDir)
}

// flock is a held flock(2) lock on a file.
type flock struct{ f *os.File }

// lockPath opens (creating it when create is set) and locks path: exclusive or shared,
// blocking or not (unix.EWOULDBLOCK when it is held).
func lockPath(path string, create, exclusive, block bool) (*flock, error) {
	flags := os.O_RDWR | unix.O_CLOEXEC
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if !block {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &flock{f: f}, nil
}

// Unlock releases the lock (for every descriptor sharing it) and closes the file.
func (l *flock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}

// lockStore takes the store-wide lock (names, creation, removal).
func (s *Store) lockStore() (*flock, error) {
	return lockPath(filepath.Join(s.root, "containers.lock"), true, true, true)
}

// lockContainer takes container id's lock. It fails with a not-found error when the
// container is gone (or goes while we wait for the lock).
func (s *Store) lockContainer(id string) (*flock, error) {
	l, err := lockPath(filepath.Join(s.Dir(id), "lock"), true, true, true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, err
	}
	// Removal renames the directory away; a lock taken on the old file protects nothing.
	if _, err := os.Stat(s.statePath(id)); err != nil {
		l.Unlock()
		return nil, notFound(id)
	}
	return l, nil
}

// LoadConfig reads container id's config.json.
func (s *Store) LoadConfig(id string) (*Container, error) {
	b, err := os.ReadFile(s.configPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, err
	}
	var c Container
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("container %s: config.json: %w", id, err)
	}
	return &c, nil
}

// LoadState reads container id's state.json.
func (s *Store) LoadState(id string) (*State, error) {
	b, err := os.ReadFile(s.statePath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("container %s: state.json: %w", id, err)
	}
	return &st, nil
}

// saveState writes container id's state.json; the caller holds the container's lock.
func (s *Store) saveState(id string, st *State) error {
	return writeJSONAtomic(s.statePath(id), st, false)
}

func (s *Store) saveConfig(c *Container, syncDir bool) error {
	return writeJSONAtomic(s.configPath(c.ID), c, syncDir)
}

// IDs lists the ids of the containers in the store.
func (s *Store) IDs() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "containers"))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.IsDir() && validIDRe.MatchString(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// nameOwner returns the id that holds name ("" when the name is free). A name whose
// container no longer exists (a create or remove killed halfway) is free.
func (s *Store) nameOwner(name string) (string, error) {
	b, err := os.ReadFile(s.namePath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if !validIDRe.MatchString(id) {
		return "", nil
	}
	if _, err := os.Stat(s.configPath(id)); err != nil {
		return "", nil
	}
	// The container must still carry the name (a rename killed halfway leaves both).
	if c, err := s.LoadConfig(id); err != nil || c.Name != name {
		return "", nil
	}
	return id, nil
}

// reserveName gives name to id; the caller holds the store lock.
func (s *Store) reserveName(name, id string) error {
	owner, err := s.nameOwner(name)
	if err != nil {
		return err
	}
	if owner != "" && owner != id {
		return conflictf("Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, owner)
	}
	return atomicfile.WriteFile(s.namePath(name), []byte(id+"\n"), 0o600, false)
}

// releaseName frees name if id holds it; the caller holds the store lock.
func (s *Store) releaseName(name, id string) {
	b, err := os.ReadFile(s.namePath(name))
	if err == nil && strings.TrimSpace(string(b)) == id {
		os.Remove(s.namePath(name))
	}
}

// removeDirs deletes container id's directories: the state directory is first renamed
// away (so that no command sees half a container), then removed.
func (s *Store) removeDirs(id string) error {
	os.RemoveAll(s.RunDir(id))
	dir := s.Dir(id)
	trash := filepath.Join(s.root, "containers", ".removing-"+id)
	if err := os.Rename(dir, trash); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.RemoveAll(trash)
}

// cleanTrash removes what a removal killed halfway left behind.
func (s *Store) cleanTrash() {
	ents, _ := os.ReadDir(filepath.Join(s.root, "containers"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".removing-") {
			os.RemoveAll(filepath.Join(s.root, "containers", e.Name()))
		}
	}
}
