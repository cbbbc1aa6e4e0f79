package snapshot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// On-disk layout of a Store rooted at <root> (for pull-run: <state root>/snapshots):
//
//	<root>/lock                     flock(2): held (exclusively) around every change of the
//	                                tree below: commit, remove, id allocation, cleanup
//	<root>/next                     next snapshot id (decimal)
//	<root>/<id>/                    a committed snapshot: the unpacked layer, used as is as
//	                                one overlay lowerdir. <id> is a small decimal integer so
//	                                that lowerdir lists stay short (DESIGN.md, "Pitfalls")
//	<root>/meta/<alg>-<hex>.json    one per snapshot, keyed by chain ID: its id, creation
//	                                time and (once computed) disk usage. A snapshot exists
//	                                when this file exists; it is written (temp file +
//	                                rename) after <id>/ is in place
//	<root>/tmp/<alg>-<hex>/         a snapshot being unpacked (Prepare), renamed to <id>/ by
//	                                commit, so a half-unpacked layer is never visible
//	<root>/tmp/<alg>-<hex>.lock     flock(2) held by the process unpacking that chain ID: two
//	                                processes never unpack the same layer at once, and a
//	                                leftover from a dead process is recognised as such
//	<root>/tmp/rm-<id>-<n>/         a snapshot being removed (renamed out of sight first)
//
// OpenStore removes what crashed processes left behind: temp dirs whose lock is free, rm-*
// dirs, <id>/ dirs without a meta file and meta files without their dir.

// StoreOptions tunes a Store.
type StoreOptions struct {
	// Sync makes commit flush the unpacked snapshot to disk (one syncfs(2) of the store's
	// filesystem, and fsync of the metadata) before it becomes visible, so that a snapshot
	// that survives a power loss is complete. Off by default, like Docker's overlay2 and
	// Podman, which do not sync layers either: flushing costs about as much as writing the
	// layer to disk once, which the pull otherwise leaves to the kernel's writeback.
	Sync bool
}

// Info describes a committed snapshot.
type Info struct {
	ChainID digest.Digest `json:"chainID"`
	ID      int64         `json:"id"`
	Created time.Time     `json:"created"`
	// Usage is the disk usage, present once Store.Usage computed it.
	Usage *Usage `json:"usage,omitempty"`
	// Path is the snapshot directory (not stored).
	Path string `json:"-"`
}

// Usage is the disk usage of a snapshot.
type Usage struct {
	Size   int64 `json:"size"`   // bytes allocated (st_blocks × 512; hardlinks counted once)
	Inodes int64 `json:"inodes"` // files, directories and other entries
}

// Errors of the Store (wrapped).
var (
	ErrNotFound = errors.New("snapshot not found")
	ErrExists   = errors.New("snapshot already exists")
)

// Store keeps unpacked layers keyed by chain ID, shared by every image that has them. It is
// safe for concurrent use by goroutines and by processes (flock on the store).
type Store struct {
	root string
	opts StoreOptions

	mu     sync.Mutex // serialises this process' holders of lockFD
	lockFD int
}

// OpenStore opens (creating it if needed) the store rooted at root and cleans up what
// crashed processes left behind.
func OpenStore(root string, opts StoreOptions) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{abs, filepath.Join(abs, "meta"), filepath.Join(abs, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("snapshot store: %w", err)
		}
	}
	fd, err := unix.Open(filepath.Join(abs, "lock"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("snapshot store: open lock: %w", err)
	}
	s := &Store{root: abs, opts: opts, lockFD: fd}
	if err := s.withLock(s.cleanup); err != nil {
		s.Close()
		return nil, fmt.Errorf("snapshot store %s: cleanup: %w", abs, err)
	}
	return s, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

// Close releases the store's lock file descriptor.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lockFD < 0 {
		return nil
	}
	err := unix.Close(s.lockFD)
	s.lockFD = -1
	return err
}

// withLock runs f holding the store lock (in-process mutex + flock across processes).
func (s *Store) withLock(f func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lockFD < 0 {
		return errors.New("snapshot store is closed")
	}
	for {
		err := unix.Flock(s.lockFD, unix.LOCK_EX)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("lock snapshot store: %w", err)
		}
		break
	}
	defer unix.Flock(s.lockFD, unix.LOCK_UN)
	return f()
}

func chainKey(chainID digest.Digest) (string, error) {
	if err := chainID.Validate(); err != nil {
		return "", fmt.Errorf("invalid chain ID %q: %w", chainID, err)
	}
	return chainID.Algorithm().String() + "-" + chainID.Encoded(), nil
}

func (s *Store) metaPath(key string) string { return filepath.Join(s.root, "meta", key+".json") }
func (s *Store) idPath(id int64) string     { return filepath.Join(s.root, strconv.FormatInt(id, 10)) }

func (s *Store) readMeta(chainID digest.Digest) (Info, error) {
	key, err := chainKey(chainID)
	if err != nil {
		return Info{}, err
	}
	b, err := os.ReadFile(s.metaPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, chainID)
	}
	if err != nil {
		return Info{}, err
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil || info.ChainID != chainID || info.ID <= 0 {
		return Info{}, fmt.Errorf("snapshot %s: corrupt metadata %s", chainID, s.metaPath(key))
	}
	info.Path = s.idPath(info.ID)
	return info, nil
}

// writeMeta writes a snapshot's metadata atomically (temp file + rename).
func (s *Store) writeMeta(info Info) error {
	key, err := chainKey(info.ChainID)
	if err != nil {
		return err
	}
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return s.writeFileAtomic(s.metaPath(key), b)
}

func (s *Store) writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && s.opts.Sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if s.opts.Sync {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsync(fd)
}

// Stat returns a committed snapshot's metadata, or an error wrapping ErrNotFound.
func (s *Store) Stat(chainID digest.Digest) (Info, error) {
	info, err := s.readMeta(chainID)
	if err != nil {
		return Info{}, err
	}
	if _, err := os.Lstat(info.Path); err != nil {
		return Info{}, fmt.Errorf("%w: %s (directory %s missing)", ErrNotFound, chainID, info.Path)
	}
	return info, nil
}

// Exists reports whether the snapshot of chainID is committed.
func (s *Store) Exists(chainID digest.Digest) bool {
	_, err := s.Stat(chainID)
	return err == nil
}

// Path returns the directory of a committed snapshot.
func (s *Store) Path(chainID digest.Digest) (string, error) {
	info, err := s.Stat(chainID)
	if err != nil {
		return "", err
	}
	return info.Path, nil
}

// List returns every committed snapshot, by id.
func (s *Store) List() ([]Info, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "meta"))
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		alg, hex, ok := strings.Cut(name, "-")
		if !ok {
			continue
		}
		info, err := s.Stat(digest.NewDigestFromEncoded(digest.Algorithm(alg), hex))
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // removed meanwhile
			}
			return nil, err
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b Info) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// Prepare reserves chainID for unpacking: it returns an empty directory to Apply the layer
// into, a commit function that makes it the snapshot (atomically: a rename), and an abort
// function that deletes it. Exactly one of them must be called; abort after commit does
// nothing, so `defer abort()` is fine. While prepared, the chain ID is locked: another
// Prepare of it, in this process or another, waits (until ctx ends) and then gets
// ErrExists if the first one committed. Prepare of a committed snapshot returns ErrExists.
func (s *Store) Prepare(ctx context.Context, chainID digest.Digest) (dir string, commit func() error, abort func(), err error) {
	key, err := chainKey(chainID)
	if err != nil {
		return "", nil, nil, err
	}
	if s.Exists(chainID) {
		return "", nil, nil, fmt.Errorf("%w: %s", ErrExists, chainID)
	}
	lockPath := filepath.Join(s.root, "tmp", key+".lock")
	lk, err := lockFile(ctx, lockPath)
	if err != nil {
		return "", nil, nil, fmt.Errorf("lock snapshot %s: %w", chainID, err)
	}
	release := func() {
		// Unlink before unlocking: a waiter then sees a stale inode and opens anew.
		os.Remove(lockPath)
		lk.Close()
	}
	if s.Exists(chainID) {
		release()
		return "", nil, nil, fmt.Errorf("%w: %s", ErrExists, chainID)
	}
	dir = filepath.Join(s.root, "tmp", key)
	if err := removePath(dir); err != nil { // leftover of a dead process
		release()
		return "", nil, nil, fmt.Errorf("remove stale %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		release()
		return "", nil, nil, err
	}
	var once sync.Once
	abort = func() {
		once.Do(func() {
			removePath(dir)
			release()
		})
	}
	commit = func() error {
		var cerr error
		ran := false
		once.Do(func() {
			ran = true
			cerr = s.commit(chainID, key, dir)
			if cerr != nil {
				removePath(dir)
			}
			release()
		})
		if !ran {
			return errors.New("snapshot commit after commit or abort")
		}
		return cerr
	}
	return dir, commit, abort, nil
}

func (s *Store) commit(chainID digest.Digest, key, dir string) error {
	if s.opts.Sync {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = unix.Syncfs(fd)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("syncfs: %w", err)
		}
	}
	return s.withLock(func() error {
		if _, err := s.Stat(chainID); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, chainID)
		}
		id, err := s.allocID()
		if err != nil {
			return err
		}
		dst := s.idPath(id)
		if err := os.Rename(dir, dst); err != nil {
			return fmt.Errorf("commit snapshot %s: %w", chainID, err)
		}
		if s.opts.Sync {
			if err := syncDir(s.root); err != nil {
				return err
			}
		}
		info := Info{ChainID: chainID, ID: id, Created: time.Now().UTC()}
		if err := s.writeMeta(info); err != nil {
			removePath(dst)
			return fmt.Errorf("commit snapshot %s: write metadata: %w", chainID, err)
		}
		return nil
	})
}

// allocID returns a fresh snapshot id (under the store lock).
func (s *Store) allocID() (int64, error) {
	next := int64(1)
	if b, err := os.ReadFile(filepath.Join(s.root, "next")); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			next = n
		}
	}
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		if n, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && n >= next {
			next = n + 1
		}
	}
	if err := s.writeFileAtomic(filepath.Join(s.root, "next"), []byte(strconv.FormatInt(next+1, 10)+"\n")); err != nil {
		return 0, err
	}
	return next, nil
}

// Remove deletes a snapshot. The caller makes sure no image or mount uses it.
func (s *Store) Remove(chainID digest.Digest) error {
	key, err := chainKey(chainID)
	if err != nil {
		return err
	}
	var trash string
	err = s.withLock(func() error {
		info, err := s.readMeta(chainID)
		if err != nil {
			return err
		}
		if err := os.Remove(s.metaPath(key)); err != nil {
			return err
		}
		trash = filepath.Join(s.root, "tmp", fmt.Sprintf("rm-%d-%d", info.ID, time.Now().UnixNano()))
		if err := os.Rename(info.Path, trash); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return removePath(trash)
}

// Usage returns the disk usage of a snapshot, computed by walking it the first time and
// kept in its metadata afterwards (a snapshot never changes).
func (s *Store) Usage(chainID digest.Digest) (Usage, error) {
	info, err := s.Stat(chainID)
	if err != nil {
		return Usage{}, err
	}
	if info.Usage != nil {
		return *info.Usage, nil
	}
	u, err := DiskUsage(info.Path)
	if err != nil {
		return Usage{}, err
	}
	err = s.withLock(func() error {
		cur, err := s.readMeta(chainID)
		if err != nil || cur.ID != info.ID {
			return nil // removed or replaced meanwhile
		}
		cur.Usage = &u
		return s.writeMeta(cur)
	})
	return u, err
}

// DiskUsage walks dir (not following symlinks) and adds up allocated blocks and inodes,
// counting each hardlinked inode once.
func DiskUsage(dir string) (Usage, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return Usage{}, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	var u Usage
	seen := map[uint64]bool{}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return u, err
	}
	u.Size += st.Blocks * 512
	u.Inodes++
	err = walkUsage(fd, &u, seen)
	return u, err
}

func walkUsage(dirfd int, u *Usage, seen map[uint64]bool) error {
	names, err := readDirNames(dirfd)
	if err != nil {
		return err
	}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return err
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if seen[st.Ino] {
				continue
			}
			seen[st.Ino] = true
		}
		u.Size += st.Blocks * 512
		u.Inodes++
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			sub, err := openDirAt(dirfd, n)
			if err != nil {
				return err
			}
			err = walkUsage(sub, u, seen)
			unix.Close(sub)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// LowerDirs returns the overlay lowerdir option value for an image whose layers have the
// given chain IDs, listed bottom layer first (the order of rootfs.diff_ids and of
// ChainIDs): the snapshot directories joined with ":" top layer first. Snapshot
// directories are <root>/<small id>, so with a store root of typical length (e.g.
// /var/lib/berth/snapshots) 128 layers take under 4 KiB. MountOverlay does not need this
// string (it passes layers one by one); it is for mount(8) and for inspection.
func (s *Store) LowerDirs(chainIDs []digest.Digest) (string, error) {
	paths, err := s.LowerPaths(chainIDs)
	if err != nil {
		return "", err
	}
	return strings.Join(paths, ":"), nil
}

// LowerPaths returns the snapshot directories of chainIDs (given bottom layer first) top
// layer first, the order MountOverlay takes.
func (s *Store) LowerPaths(chainIDs []digest.Digest) ([]string, error) {
	out := make([]string, len(chainIDs))
	for i, c := range chainIDs {
		p, err := s.Path(c)
		if err != nil {
			return nil, err
		}
		out[len(chainIDs)-1-i] = p
	}
	return out, nil
}

// cleanup removes what crashed processes left behind (under the store lock).
func (s *Store) cleanup() error {
	tmpDir := filepath.Join(s.root, "tmp")
	ents, err := os.ReadDir(tmpDir)
	if err != nil {
		return err
	}
	locked := map[string]bool{} // temp dirs whose owner is alive
	for _, e := range ents {
		key, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok {
			continue
		}
		p := filepath.Join(tmpDir, e.Name())
		lk, err := tryLockFile(p)
		if err != nil {
			locked[key] = true
			continue
		}
		if lk == nil {
			continue // vanished
		}
		removePath(filepath.Join(tmpDir, key))
		os.Remove(p)
		lk.Close()
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".lock") || locked[n] {
			continue
		}
		if err := removePath(filepath.Join(tmpDir, n)); err != nil {
			return err
		}
	}
	// Snapshot dirs without metadata (a commit interrupted between rename and metadata) and
	// metadata without its dir.
	referenced := map[int64]bool{}
	metas, err := os.ReadDir(filepath.Join(s.root, "meta"))
	if err != nil {
		return err
	}
	for _, m := range metas {
		p := filepath.Join(s.root, "meta", m.Name())
		if strings.HasSuffix(m.Name(), ".tmp") {
			os.Remove(p)
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var info Info
		if json.Unmarshal(b, &info) != nil || info.ID <= 0 {
			os.Remove(p)
			continue
		}
		if _, err := os.Lstat(s.idPath(info.ID)); err != nil {
			os.Remove(p)
			continue
		}
		referenced[info.ID] = true
	}
	roots, err := os.ReadDir(s.root)
	if err != nil {
		return err
	}
	for _, e := range roots {
		if n, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && !referenced[n] {
			if err := removePath(s.idPath(n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// removePath removes path recursively without following symlinks (works on trees with
// read-only directories, unlike os.RemoveAll for non-root users).
func removePath(path string) error {
	parent, err := unix.Open(filepath.Dir(path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	defer unix.Close(parent)
	return RemoveAllAt(parent, filepath.Base(path))
}

// RemoveSnapshotDir removes a directory that Apply wrote into (for instance after a failed
// Apply outside a Store), including read-only directories a non-root unpack left.
func RemoveSnapshotDir(dir string) error { return removePath(dir) }

// lockFile takes an exclusive flock on path, waiting (polling) until ctx ends. It makes sure
// the locked file is still the one at path (a holder unlinks it before unlocking).
func lockFile(ctx context.Context, path string) (*os.File, error) {
	delay := 5 * time.Millisecond
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if err == unix.EINTR {
				continue
			}
			if err != unix.EWOULDBLOCK {
				break
			}
			select {
			case <-ctx.Done():
				f.Close()
				return nil, ctx.Err()
			case <-time.After(delay):
			}
			delay = min(delay*2, 100*time.Millisecond)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		if sameFile(f, path) {
			return f, nil
		}
		f.Close() // unlinked by its previous holder: start over
	}
}

// tryLockFile takes an exclusive flock on an existing path without waiting: (nil, nil) if the
// file is gone, an error if it is locked.
func tryLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	if !sameFile(f, path) {
		f.Close()
		return nil, nil
	}
	return f, nil
}

func sameFile(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}
