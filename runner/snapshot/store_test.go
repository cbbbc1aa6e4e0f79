package snapshot

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), "snapshots"), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// unpack prepares chainID, applies data and commits.
func unpack(t testing.TB, s *Store, chainID digest.Digest, data []byte) string {
	t.Helper()
	dir, commit, abort, err := s.Prepare(context.Background(), chainID)
	if err != nil {
		t.Fatalf("Prepare %s: %v", chainID, err)
	}
	defer abort()
	if _, err := applyTar(t, dir, data, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	p, err := s.Path(chainID)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStoreLifecycle(t *testing.T) {
	s := openStore(t)
	layer := mkTar(t, file("etc/os-release", "ID=test\n"), dirEnt("var/"))
	diffID := sha(layer)
	chain := ChainID([]digest.Digest{diffID})

	if s.Exists(chain) {
		t.Fatal("exists before commit")
	}
	if _, err := s.Stat(chain); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat before: %v", err)
	}
	dir, commit, abort, err := s.Prepare(context.Background(), chain)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dir, filepath.Join(s.Root(), "tmp")+"/") {
		t.Errorf("prepared dir %s is not under tmp/", dir)
	}
	got, _, err := ApplyLayer(context.Background(), dir, bytes.NewReader(layer), ApplyOptions{})
	if err != nil || got != diffID {
		t.Fatalf("ApplyLayer: %s %v", got, err)
	}
	if s.Exists(chain) {
		t.Fatal("visible before commit")
	}
	if err := commit(); err != nil {
		t.Fatal(err)
	}
	abort() // no-op after commit
	if err := commit(); err == nil {
		t.Error("second commit succeeded")
	}
	notExist(t, dir)
	info, err := s.Stat(chain)
	if err != nil {
		t.Fatal(err)
	}
	if info.ChainID != chain || info.ID != 1 || info.Path != filepath.Join(s.Root(), "1") || time.Since(info.Created) > time.Minute {
		t.Errorf("info = %+v", info)
	}
	if got := readFile(t, filepath.Join(info.Path, "etc/os-release")); got != "ID=test\n" {
		t.Errorf("os-release = %q", got)
	}
	if _, _, _, err := s.Prepare(context.Background(), chain); !errors.Is(err, ErrExists) {
		t.Errorf("Prepare of a committed snapshot: %v", err)
	}

	u, err := s.Usage(chain)
	if err != nil {
		t.Fatal(err)
	}
	if u.Inodes != 4 || u.Size < 4096 {
		t.Errorf("usage = %+v (want 4 inodes: the root, etc, etc/os-release, var)", u)
	}
	if info, _ := s.Stat(chain); info.Usage == nil || *info.Usage != u {
		t.Errorf("usage not cached: %+v", info.Usage)
	}

	// A second snapshot; List is by id.
	chain2 := ChainID([]digest.Digest{diffID, sha([]byte("x"))})
	unpack(t, s, chain2, mkTar(t, file("x", "x")))
	list, err := s.List()
	if err != nil || len(list) != 2 || list[0].ChainID != chain || list[1].ChainID != chain2 || list[1].ID != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}

	if err := s.Remove(chain); err != nil {
		t.Fatal(err)
	}
	if s.Exists(chain) {
		t.Error("exists after Remove")
	}
	notExist(t, info.Path)
	if err := s.Remove(chain); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ not empty: %v", ents)
	}
	// Ids are not reused.
	chain3 := digest.FromString("three")
	if p := unpack(t, s, chain3, mkTar(t, file("y", "y"))); filepath.Base(p) != "3" {
		t.Errorf("third snapshot at %s", p)
	}
}

func TestStoreAbort(t *testing.T) {
	s := openStore(t)
	chain := digest.FromString("aborted")
	dir, _, abort, err := s.Prepare(context.Background(), chain)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, dir, mkTar(t, ent{name: "ro/", typ: '5', mode: 0o555}, file("ro/f", "f")), ApplyOptions{})
	abort()
	notExist(t, dir)
	if s.Exists(chain) {
		t.Error("aborted snapshot exists")
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ not empty after abort: %v", ents)
	}
	// It can be prepared again.
	unpack(t, s, chain, mkTar(t, file("a", "a")))
}

func TestStoreInvalidChainID(t *testing.T) {
	s := openStore(t)
	for _, c := range []digest.Digest{"", "sha256:../../etc", "sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:" + digest.Digest(strings.Repeat("A", 64))} {
		if _, _, _, err := s.Prepare(context.Background(), c); err == nil {
			t.Errorf("Prepare(%q) succeeded", c)
		}
		if _, err := s.Path(c); err == nil {
			t.Errorf("Path(%q) succeeded", c)
		}
		if err := s.Remove(c); err == nil {
			t.Errorf("Remove(%q) succeeded", c)
		}
	}
}

// Two goroutines preparing the same chain: the second waits, then learns it exists.
func TestStoreConcurrentPrepare(t *testing.T) {
	s := openStore(t)
	chain := digest.FromString("shared base")
	dir, commit, _, err := s.Prepare(context.Background(), chain)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, abort, err := s.Prepare(context.Background(), chain)
			if err == nil {
				abort()
			}
			errs[i] = err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	mustApply(t, dir, mkTar(t, file("f", "f")), ApplyOptions{})
	if err := commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, err := range errs {
		if !errors.Is(err, ErrExists) {
			t.Errorf("waiting Prepare: %v, want ErrExists", err)
		}
	}
	// A waiting Prepare gives up with its context.
	chain2 := digest.FromString("other")
	_, _, abort, err := s.Prepare(context.Background(), chain2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, _, err := s.Prepare(ctx, chain2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Prepare while locked: %v", err)
	}
	abort()
}

// Many snapshots committed concurrently get distinct ids.
func TestStoreConcurrentCommits(t *testing.T) {
	root := filepath.Join(t.TempDir(), "snapshots")
	stores := make([]*Store, 3) // several Store values: as several processes would
	for i := range stores {
		s, err := OpenStore(root, StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unpack(t, stores[i%3], digest.FromString(strconv.Itoa(i)), mkTar(t, file("n", strconv.Itoa(i))))
		}()
	}
	wg.Wait()
	list, err := stores[0].List()
	if err != nil || len(list) != 24 {
		t.Fatalf("List: %d, %v", len(list), err)
	}
	seen := map[int64]bool{}
	for _, in := range list {
		if seen[in.ID] {
			t.Errorf("id %d used twice", in.ID)
		}
		seen[in.ID] = true
	}
	for i := range 24 {
		p, err := stores[1].Path(digest.FromString(strconv.Itoa(i)))
		if err != nil || readFile(t, filepath.Join(p, "n")) != strconv.Itoa(i) {
			t.Errorf("snapshot %d: %s %v", i, p, err)
		}
	}
}

// What a crash leaves behind is cleaned up by the next OpenStore, and is never visible.
func TestStoreCleanupAtOpen(t *testing.T) {
	root := filepath.Join(t.TempDir(), "snapshots")
	s, err := OpenStore(root, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kept := digest.FromString("kept")
	unpack(t, s, kept, mkTar(t, file("k", "k")))
	s.Close()

	// A temp dir with a stale (unlocked) lock, one without a lock, a half-removed snapshot,
	// an id dir without metadata (crash inside commit), metadata without its dir.
	half := digest.FromString("half")
	key, _ := chainKey(half)
	os.MkdirAll(filepath.Join(root, "tmp", key, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(root, "tmp", key+".lock"), nil, 0o600)
	os.MkdirAll(filepath.Join(root, "tmp", "sha256-deadbeef", "x"), 0o755)
	os.MkdirAll(filepath.Join(root, "tmp", "rm-7-123", "y"), 0o555)
	os.MkdirAll(filepath.Join(root, "42", "etc"), 0o755)
	ghost := digest.FromString("ghost")
	gkey, _ := chainKey(ghost)
	os.WriteFile(filepath.Join(root, "meta", gkey+".json"), []byte(`{"chainID":"`+ghost.String()+`","id":99}`), 0o600)
	if (&Store{root: root}).Exists(half) {
		t.Fatal("half-unpacked snapshot visible")
	}

	s, err = OpenStore(root, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ after cleanup: %v", ents)
	}
	notExist(t, filepath.Join(root, "42"))
	notExist(t, filepath.Join(root, "meta", gkey+".json"))
	if !s.Exists(kept) {
		t.Error("committed snapshot lost by cleanup")
	}
	list, _ := s.List()
	if len(list) != 1 {
		t.Errorf("List after cleanup: %+v", list)
	}
	if p := unpack(t, s, half, mkTar(t, file("h", "h"))); filepath.Base(p) != "2" {
		t.Errorf("next snapshot at %s, want id 2", p)
	}
}

// Another process holding a Prepare: its lock is honoured across processes, its temp dir
// is not touched by our OpenStore, and once it dies (SIGKILL) the next Prepare takes over.
func TestStoreCrossProcess(t *testing.T) {
	if spec := os.Getenv("BERTH_SNAPSHOT_TEST_CHILD"); spec != "" {
		storeChild(spec)
		return
	}
	root := filepath.Join(t.TempDir(), "snapshots")
	chain := digest.FromString("contended")
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreCrossProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BERTH_SNAPSHOT_TEST_CHILD="+root+"|"+chain.String())
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("child: %q %v", line, err)
	}
	childDir := strings.TrimSpace(strings.TrimPrefix(line, "ready "))

	s, err := OpenStore(root, StoreOptions{}) // must not clean the live child's temp dir
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(childDir, "partial")); err != nil {
		t.Fatalf("OpenStore removed a live process' temp dir: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, _, _, err := s.Prepare(ctx, chain); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Prepare while another process holds it: %v", err)
	}

	cmd.Process.Kill()
	cmd.Wait()
	dir, commit, abort, err := s.Prepare(context.Background(), chain)
	if err != nil {
		t.Fatalf("Prepare after the holder died: %v", err)
	}
	defer abort()
	notExist(t, filepath.Join(dir, "partial")) // the dead process' half layer is gone
	mustApply(t, dir, mkTar(t, file("complete", "yes")), ApplyOptions{})
	if err := commit(); err != nil {
		t.Fatal(err)
	}
	p, _ := s.Path(chain)
	if readFile(t, filepath.Join(p, "complete")) != "yes" {
		t.Error("snapshot content")
	}
}

func storeChild(spec string) {
	root, chain, _ := strings.Cut(spec, "|")
	s, err := OpenStore(root, StoreOptions{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	dir, _, _, err := s.Prepare(context.Background(), digest.Digest(chain))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	os.WriteFile(filepath.Join(dir, "partial"), []byte("half"), 0o644)
	fmt.Println("ready", dir)
	time.Sleep(time.Minute) // killed by the parent
	os.Exit(0)
}

func TestStoreLowerDirs(t *testing.T) {
	s := openStore(t)
	var diffIDs []digest.Digest
	for i := range 3 {
		diffIDs = append(diffIDs, sha([]byte{byte(i)}))
	}
	chains := ChainIDs(diffIDs)
	for i, c := range chains {
		unpack(t, s, c, mkTar(t, file(fmt.Sprintf("l%d", i), "x")))
	}
	got, err := s.LowerDirs(chains)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{filepath.Join(s.Root(), "3"), filepath.Join(s.Root(), "2"), filepath.Join(s.Root(), "1")}, ":")
	if got != want {
		t.Errorf("LowerDirs = %q, want %q (top first)", got, want)
	}
	if _, err := s.LowerDirs(append(chains, digest.FromString("missing"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("LowerDirs with a missing snapshot: %v", err)
	}
	// Length budget: with pull-run's default root, 128 layers (ids up to 3 digits) fit in
	// one page with room for upperdir and workdir.
	const defaultRoot = "/var/lib/berth/snapshots"
	n := 0
	for id := 1; id <= 128; id++ {
		n += len(defaultRoot) + 1 + len(strconv.Itoa(id+900)) + 1
	}
	if n > 4096-300 {
		t.Errorf("128 lowerdirs take %d bytes", n)
	}
}
