package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DriverLocal is the only volume driver: a directory under the state root.
const DriverLocal = "local"

// AnonymousLabel marks anonymous volumes, as Docker ≥ 23 does (prune without -a removes
// only those).
const AnonymousLabel = "com.docker.volume.anonymous"

// Errors of the store, for errors.Is.
var (
	// ErrNotFound: no such volume.
	ErrNotFound = errors.New("no such volume")
	// ErrInUse: the volume is used by a container.
	ErrInUse = errors.New("volume is in use")
	// ErrInvalidName: the name is not a valid local volume name.
	ErrInvalidName = errors.New("invalid volume name")
)

// pendingTTL bounds how long a reference of a creating process counts without its
// container (the process may live on for other reasons).
const pendingTTL = time.Hour

var (
	nameRe      = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
	containerRe = regexp.MustCompile(`^[0-9a-f]{64}$`)
	pendingRe   = regexp.MustCompile(`^pending-[0-9a-f]{32}$`)
)

// ValidateName checks a local volume name with Docker's rule ([a-zA-Z0-9][a-zA-Z0-9_.-]+).
func ValidateName(name string) error {
	if !nameRe.MatchString(name) {
		return fmt.Errorf("%w: %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", ErrInvalidName, name)
	}
	return nil
}

// Volume is a volume's metadata (volume.json) and where its data is.
type Volume struct {
	Name      string            `json:"Name"`
	Driver    string            `json:"Driver"`
	Labels    map[string]string `json:"Labels"`
	Options   map[string]string `json:"Options"`
	CreatedAt time.Time         `json:"CreatedAt"`
	// Anonymous: created for one container (-v /path, an image VOLUME), removed with it
	// by rm -v and --rm.
	Anonymous bool `json:"Anonymous"`
	// Refs are the references: container IDs and pending tokens of creating processes.
	Refs map[string]Ref `json:"Refs,omitempty"`

	// Mountpoint is the data directory (not stored).
	Mountpoint string `json:"-"`
}

// Ref is a reference to a volume.
type Ref struct {
	Since time.Time `json:"Since"`
	// Pid is the creating process of a pending reference.
	Pid int `json:"Pid,omitempty"`
}

// Users are the references of containers (IDs) and pending creations, sorted.
func (v *Volume) Users() []string {
	out := make([]string, 0, len(v.Refs))
	for r := range v.Refs {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// CreateOptions are volume create's options.
type CreateOptions struct {
	// Driver must be "" or "local".
	Driver string
	// Labels are --label values.
	Labels map[string]string
	// Anonymous marks a volume created for one container (it gets AnonymousLabel).
	Anonymous bool
}

// Store is the volumes of one state root.
type Store struct {
	stateRoot string
	dir       string
}

// Open opens (creating it) the volume store of the state root stateRoot.
func Open(stateRoot string) (*Store, error) {
	abs, err := filepath.Abs(stateRoot)
	if err != nil {
		return nil, err
	}
	s := &Store{stateRoot: abs, dir: filepath.Join(abs, "volumes")}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("volume store: %w", err)
	}
	return s, nil
}

// StateRoot is the absolute state root of the store.
func (s *Store) StateRoot() string { return s.stateRoot }

// Path is the data directory of the volume name (validated, not checked for existence).
func (s *Store) Path(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, name, "_data"), nil
}

// volDir is the directory of a validated name.
func (s *Store) volDir(name string) string { return filepath.Join(s.dir, name) }

// lock takes the store's exclusive lock.
func (s *Store) lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, ".lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flockCtx(ctx, int(f.Fd())); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock volume store: %w", err)
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// flockCtx takes an exclusive flock of fd, polling until ctx is done.
func flockCtx(ctx context.Context, fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// load reads a volume's metadata (the caller holds the lock; name validated).
func (s *Store) load(name string) (*Volume, error) {
	b, err := os.ReadFile(filepath.Join(s.volDir(name), "volume.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	v := &Volume{}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("volume %s: %w", name, err)
	}
	if v.Name != name {
		return nil, fmt.Errorf("volume %s: metadata names %q", name, v.Name)
	}
	v.Mountpoint = filepath.Join(s.volDir(name), "_data")
	return v, nil
}

// save writes a volume's metadata atomically.
func (s *Store) save(v *Volume) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	dir := s.volDir(v.Name)
	tmp := filepath.Join(dir, ".volume.json.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "volume.json"))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// live drops v's stale references (containers that no longer exist, pending creations
// whose process is gone or too old) and tells whether it dropped any.
func (s *Store) live(v *Volume) bool {
	changed := false
	for r, ref := range v.Refs {
		if !s.refAlive(r, ref) {
			delete(v.Refs, r)
			changed = true
		}
	}
	return changed
}

func (s *Store) refAlive(r string, ref Ref) bool {
	switch {
	case containerRe.MatchString(r):
		st, err := os.Stat(filepath.Join(s.stateRoot, "containers", r))
		return err == nil && st.IsDir()
	case pendingRe.MatchString(r):
		if time.Since(ref.Since) > pendingTTL || ref.Pid <= 0 {
			return false
		}
		err := unix.Kill(ref.Pid, 0)
		return err == nil || err == unix.EPERM
	}
	return false
}

// randomHex is n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Create creates the volume name (a random 64-hex name when ""), or returns the existing
// one of that name as Docker does.
func (s *Store) Create(ctx context.Context, name string, o CreateOptions) (*Volume, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	v, _, err := s.create(name, o)
	return v, err
}

// create is Create with the lock held; created tells whether the volume is new.
func (s *Store) create(name string, o CreateOptions) (*Volume, bool, error) {
	if o.Driver != "" && o.Driver != DriverLocal {
		return nil, false, fmt.Errorf("create %s: error looking up volume plugin %s: plugin %q not found", name, o.Driver, o.Driver)
	}
	if name == "" {
		name = randomHex(32)
	}
	if err := ValidateName(name); err != nil {
		return nil, false, fmt.Errorf("create %s: %w", name, err)
	}
	if v, err := s.load(name); err == nil {
		return v, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	v := &Volume{Name: name, Driver: DriverLocal, CreatedAt: time.Now().UTC().Truncate(time.Second),
		Anonymous: o.Anonymous}
	if len(o.Labels) > 0 || o.Anonymous {
		v.Labels = map[string]string{}
		for k, val := range o.Labels {
			v.Labels[k] = val
		}
		if o.Anonymous {
			v.Labels[AnonymousLabel] = ""
		}
	}
	dir := s.volDir(name)
	os.RemoveAll(dir) // the leftovers of a creation killed halfway (no volume.json)
	if err := os.Mkdir(dir, 0o701); err != nil {
		return nil, false, fmt.Errorf("create %s: %w", name, err)
	}
	if err := os.Mkdir(filepath.Join(dir, "_data"), 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, false, fmt.Errorf("create %s: %w", name, err)
	}
	if err := s.save(v); err != nil {
		os.RemoveAll(dir)
		return nil, false, fmt.Errorf("create %s: %w", name, err)
	}
	v.Mountpoint = filepath.Join(dir, "_data")
	return v, true, nil
}

// Get returns the volume name.
func (s *Store) Get(ctx context.Context, name string) (*Volume, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	v, err := s.load(name)
	if err != nil {
		return nil, err
	}
	if s.live(v) {
		s.save(v)
	}
	return v, nil
}

// List returns every volume, sorted by name, with its live references.
func (s *Store) List(ctx context.Context) ([]*Volume, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.list()
}

func (s *Store) list() ([]*Volume, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []*Volume
	for _, e := range ents {
		if !e.IsDir() || ValidateName(e.Name()) != nil {
			continue
		}
		v, err := s.load(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // a creation killed halfway
		}
		if err != nil {
			return nil, err
		}
		if s.live(v) {
			if err := s.save(v); err != nil {
				return nil, err
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// Remove removes the volume name and its data. A volume in use is refused ("volume is in
// use - [CONTAINER ID]"), with force too; force ignores a missing volume.
func (s *Store) Remove(ctx context.Context, name string, force bool) error {
	if err := ValidateName(name); err != nil {
		if force {
			return nil
		}
		return fmt.Errorf("remove %s: %w", name, err)
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	v, err := s.load(name)
	if err != nil {
		if force && errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	s.live(v)
	if len(v.Refs) > 0 {
		s.save(v)
		return fmt.Errorf("remove %s: %w - [%s]", name, ErrInUse, strings.Join(v.Users(), ", "))
	}
	_, err = s.remove(name)
	return err
}

// remove deletes a volume's directory (lock held) and returns the bytes it freed. The
// directory is renamed away first, so a removal killed halfway leaves no half volume.
func (s *Store) remove(name string) (uint64, error) {
	dir := s.volDir(name)
	trash := filepath.Join(s.dir, ".removing-"+name)
	size := dirSize(filepath.Join(dir, "_data"))
	if err := os.Rename(dir, trash); err != nil {
		return 0, fmt.Errorf("remove %s: %w", name, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return 0, fmt.Errorf("remove %s: %w", name, err)
	}
	return size, nil
}

func dirSize(dir string) uint64 {
	var n uint64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
					n += uint64(fi.Size()) / uint64(st.Nlink)
				} else {
					n += uint64(fi.Size())
				}
			}
		}
		return nil
	})
	return n
}

// Filter selects volumes for ls and prune: Docker's filters dangling=true|false,
// name=SUBSTRING, label=KEY or label=KEY=VALUE, label!=..., driver=local.
type Filter map[string][]string

// ParseFilter checks the filter keys and values.
func ParseFilter(f Filter) error {
	for k, vals := range f {
		switch k {
		case "dangling":
			for _, v := range vals {
				if _, err := parseBool(v); err != nil {
					return fmt.Errorf("invalid filter 'dangling=%s'", v)
				}
			}
		case "name", "label", "label!", "driver", "all":
		default:
			return fmt.Errorf("invalid filter '%s'", k)
		}
	}
	return nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q", s)
}

// Match tells whether v passes the filter.
func (f Filter) Match(v *Volume) bool {
	for k, vals := range f {
		ok := false
		for _, val := range vals {
			switch k {
			case "dangling":
				b, _ := parseBool(val)
				ok = ok || b == (len(v.Refs) == 0)
			case "name":
				ok = ok || strings.Contains(v.Name, val)
			case "driver":
				ok = ok || val == v.Driver
			case "label":
				ok = ok || labelMatch(v.Labels, val)
			case "label!":
				ok = ok || !labelMatch(v.Labels, val)
			case "all":
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func labelMatch(labels map[string]string, f string) bool {
	k, val, hasVal := strings.Cut(f, "=")
	got, ok := labels[k]
	return ok && (!hasVal || got == val)
}

// PruneReport is what Prune removed.
type PruneReport struct {
	VolumesDeleted []string
	SpaceReclaimed uint64
}

// Prune removes the unused volumes that pass the filter: only anonymous ones unless all
// (Docker ≥ 23, also with the filter all=true). A volume in use is never removed.
func (s *Store) Prune(ctx context.Context, all bool, f Filter) (PruneReport, error) {
	var rep PruneReport
	if err := ParseFilter(f); err != nil {
		return rep, err
	}
	if vals, ok := f["all"]; ok {
		for _, v := range vals {
			if b, err := parseBool(v); err == nil && b {
				all = true
			}
		}
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return rep, err
	}
	defer unlock()
	vols, err := s.list()
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, v := range vols {
		if len(v.Refs) > 0 || !f.Match(v) {
			continue
		}
		if _, anon := v.Labels[AnonymousLabel]; !all && !anon && !v.Anonymous {
			continue
		}
		n, err := s.remove(v.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rep.VolumesDeleted = append(rep.VolumesDeleted, v.Name)
		rep.SpaceReclaimed += n
	}
	return rep, errors.Join(errs...)
}

// Request asks Reserve for one volume.
type Request struct {
	// Name is the volume; "" creates an anonymous volume.
	Name string
	// Labels are given to a volume Reserve creates (--mount volume-label).
	Labels map[string]string
	// MustExist refuses to create a missing volume (--volumes-from).
	MustExist bool
}

// Reservation is what Reserve did: the volumes in the order of the requests.
type Reservation struct {
	// Token is the pending reference recorded on every volume.
	Token   string
	Volumes []*Volume
	// Created tells which volumes Reserve created.
	Created []bool
}

// Names are the reserved volumes' names.
func (r *Reservation) Names() []string {
	out := make([]string, len(r.Volumes))
	for i, v := range r.Volumes {
		out[i] = v.Name
	}
	return out
}

// Reserve gets or creates the requested volumes and records a pending reference of this
// process on each, in one locked step: a prune meanwhile cannot remove them. Commit turns
// the reference into the container's once it exists; Release drops it.
func (s *Store) Reserve(ctx context.Context, reqs []Request) (*Reservation, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r := &Reservation{Token: "pending-" + randomHex(16)}
	fail := func(err error) (*Reservation, error) {
		s.release(r.Names(), r.Token, true)
		return nil, err
	}
	for _, q := range reqs {
		var v *Volume
		created := false
		if q.MustExist {
			if err := ValidateName(q.Name); err != nil {
				return fail(fmt.Errorf("get %s: %w", q.Name, err))
			}
			v, err = s.load(q.Name)
		} else {
			v, created, err = s.create(q.Name, CreateOptions{Labels: q.Labels, Anonymous: q.Name == ""})
		}
		if err != nil {
			return fail(err)
		}
		s.live(v)
		if v.Refs == nil {
			v.Refs = map[string]Ref{}
		}
		v.Refs[r.Token] = Ref{Since: time.Now().UTC(), Pid: os.Getpid()}
		if err := s.save(v); err != nil {
			return fail(err)
		}
		r.Volumes = append(r.Volumes, v)
		r.Created = append(r.Created, created)
	}
	return r, nil
}

// Commit replaces the pending reference token by the container containerID on the
// volumes names.
func (s *Store) Commit(ctx context.Context, names []string, token, containerID string) error {
	if !containerRe.MatchString(containerID) {
		return fmt.Errorf("invalid container ID %q", containerID)
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	for _, name := range names {
		if ValidateName(name) != nil {
			continue
		}
		v, err := s.load(name)
		if err != nil {
			return err
		}
		if v.Refs == nil {
			v.Refs = map[string]Ref{}
		}
		delete(v.Refs, token)
		v.Refs[containerID] = Ref{Since: time.Now().UTC()}
		if err := s.save(v); err != nil {
			return err
		}
	}
	return nil
}

// Release drops the reference ref (a container ID or a pending token) from the volumes
// names; with removeAnonymous, the anonymous ones nobody else uses are removed (rm -v).
// Missing volumes are skipped: Release may run more than once.
func (s *Store) Release(ctx context.Context, names []string, ref string, removeAnonymous bool) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return s.release(names, ref, removeAnonymous)
}

func (s *Store) release(names []string, ref string, removeAnonymous bool) error {
	var errs []error
	for _, name := range names {
		if ValidateName(name) != nil {
			continue
		}
		v, err := s.load(name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		delete(v.Refs, ref)
		s.live(v)
		if removeAnonymous && v.Anonymous && len(v.Refs) == 0 {
			if _, err := s.remove(name); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := s.save(v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// IsEmpty tells whether the volume's data directory has no entries.
func IsEmpty(v *Volume) (bool, error) {
	f, err := os.Open(v.Mountpoint)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return false, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return true, nil
}
