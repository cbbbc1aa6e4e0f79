//go:build e2e

package e2e

// End-to-end tests of `pull-run pull`, `images`, `rmi` and `image prune`: the real pull-run
// binary against Berth and Debian's docker-registry 2.8, with the unpacked trees compared
// with what Docker (or GNU tar) makes of the same images, bad input from proxies that tamper
// with, cut, slow down or replace the registry's answers, hostile layers, and kill -9.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/registry/client"
	"github.com/berth-registry/berth/runner/snapshot"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// ---------------------------------------------------------------------------------------------
// the pull-run binary

var (
	plBuildOnce sync.Once
	plBinPath   string
	plBuildErr  error
)

// pullRunBin builds ./cmd/pull-run once per test binary run.
func pullRunBin(t *testing.T) string {
	t.Helper()
	plBuildOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), "berth-e2e-pull-run")
		if plBuildErr = os.MkdirAll(dir, 0o755); plBuildErr != nil {
			return
		}
		plBinPath = filepath.Join(dir, "pull-run")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", plBinPath, "./cmd/pull-run")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			plBuildErr = fmt.Errorf("go build ./cmd/pull-run: %v\n%s", err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", plBinPath, time.Since(start).Round(time.Millisecond))
	})
	if plBuildErr != nil {
		t.Fatal(plBuildErr)
	}
	return plBinPath
}

// plHost is one pull-run state root.
type plHost struct {
	t             *testing.T
	bin           string
	root, runroot string
	home          string // HOME and DOCKER_CONFIG: no credentials of the machine
}

func newPLHost(t *testing.T) *plHost {
	t.Helper()
	dir := t.TempDir()
	h := &plHost{t: t, bin: pullRunBin(t), root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run"), home: filepath.Join(dir, "home")}
	os.MkdirAll(h.home, 0o700)
	return h
}

func (h *plHost) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, h.bin, append([]string{"--root", h.root, "--runroot", h.runroot}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+h.home, "DOCKER_CONFIG="+h.home)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs pull-run and returns its outputs and exit status.
func (h *plHost) run(args ...string) (string, string, int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := h.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			h.t.Fatalf("pull-run %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	h.t.Logf("$ pull-run %s → %d (%s)\n%s\n%s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond),
		tail(out.String(), 30), tail(errb.String(), 30))
	return out.String(), errb.String(), code
}

// must runs pull-run and fails the test unless it exits 0.
func (h *plHost) must(args ...string) string {
	h.t.Helper()
	out, errs, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("pull-run %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// mustFail runs pull-run, expects exit status 1 and an "Error: " line naming every part.
func (h *plHost) mustFail(args []string, parts ...string) string {
	h.t.Helper()
	out, errs, code := h.run(args...)
	if code != 1 {
		h.t.Errorf("pull-run %s: exit %d, want 1\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	if !strings.HasPrefix(errs, "Error: ") {
		h.t.Errorf("pull-run %s: stderr does not start with \"Error: \": %q", strings.Join(args, " "), errs)
	}
	for _, p := range parts {
		if !strings.Contains(errs, p) {
			h.t.Errorf("pull-run %s: error does not mention %q:\n%s", strings.Join(args, " "), p, errs)
		}
	}
	return errs
}

// images returns `images --format {{.Repository}}:{{.Tag}}@{{.ID}}` lines.
func (h *plHost) images() []string {
	h.t.Helper()
	out := h.must("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// inspect returns `image inspect` of one image.
func (h *plHost) inspect(ref string) map[string]any {
	h.t.Helper()
	var arr []map[string]any
	out := h.must("image", "inspect", ref)
	if err := json.Unmarshal([]byte(out), &arr); err != nil || len(arr) != 1 {
		h.t.Fatalf("image inspect %s: %v\n%s", ref, err, out)
	}
	return arr[0]
}

// chainIDs returns the chain IDs of an image's layers, from inspect's RootFS.
func (h *plHost) chainIDs(ref string) []string {
	h.t.Helper()
	var diffIDs []digest.Digest
	for _, l := range h.inspect(ref)["RootFS"].(map[string]any)["Layers"].([]any) {
		diffIDs = append(diffIDs, digest.Digest(l.(string)))
	}
	var out []string
	for _, c := range snapshot.ChainIDs(diffIDs) {
		out = append(out, c.String())
	}
	return out
}

// snapshots lists the committed snapshots (chain IDs, sorted) and checks the store's
// consistency: one numbered directory per metadata file, nothing half-made in tmp/.
func (h *plHost) snapshots() []string {
	h.t.Helper()
	dir := filepath.Join(h.root, "snapshots")
	metas, _ := filepath.Glob(filepath.Join(dir, "meta", "*.json"))
	var out []string
	for _, m := range metas {
		var info struct {
			ChainID string `json:"chainID"`
			ID      int64  `json:"id"`
		}
		b, err := os.ReadFile(m)
		if err != nil || json.Unmarshal(b, &info) != nil {
			h.t.Fatalf("snapshot metadata %s: %v %s", m, err, b)
		}
		if st, err := os.Stat(filepath.Join(dir, strconv.FormatInt(info.ID, 10))); err != nil || !st.IsDir() {
			h.t.Errorf("snapshot %s: directory %d missing", info.ChainID, info.ID)
		}
		out = append(out, info.ChainID)
	}
	ents, _ := os.ReadDir(dir)
	dirs := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			dirs++
		}
	}
	if dirs != len(metas) {
		h.t.Errorf("%d snapshot directories for %d metadata files in %s", dirs, len(metas), dir)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		var names []string
		for _, e := range tmp {
			names = append(names, e.Name())
		}
		h.t.Errorf("half-made snapshots left in %s/tmp: %v", dir, names)
	}
	sort.Strings(out)
	return out
}

// mount mounts the image's snapshots as an overlay (with a throwaway upper layer) and returns
// the merged directory; it is unmounted when the test ends.
func (h *plHost) mount(ref string) string {
	h.t.Helper()
	gd := h.inspect(ref)["GraphDriver"].(map[string]any)["Data"].(map[string]any)
	lower := strings.Split(gd["LowerDir"].(string), ":")
	dir := h.t.TempDir()
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged} {
		os.MkdirAll(d, 0o755)
	}
	if err := snapshot.MountOverlay(lower, upper, work, merged); err != nil {
		h.t.Fatalf("mount overlay of %s (%d layers): %v", ref, len(lower), err)
	}
	h.t.Cleanup(func() {
		if err := snapshot.Unmount(merged); err != nil {
			h.t.Errorf("unmount %s: %v", merged, err)
		}
	})
	return merged
}

// ---------------------------------------------------------------------------------------------
// images built by the tests

type plEnt struct {
	name     string
	typ      byte
	body     string
	mode     int64
	link     string
	uid, gid int
}

func plF(name, body string) plEnt { return plEnt{name: name, typ: tar.TypeReg, body: body} }
func plD(name string) plEnt       { return plEnt{name: name, typ: tar.TypeDir} }
func plS(name, target string) plEnt {
	return plEnt{name: name, typ: tar.TypeSymlink, link: target}
}
func plHL(name, target string) plEnt { return plEnt{name: name, typ: tar.TypeLink, link: target} }
func plWh(name string) plEnt         { return plEnt{name: name, typ: tar.TypeReg} }

func plTar(t testing.TB, ents ...plEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Uid: e.uid, Gid: e.gid,
			ModTime: epoch, Format: tar.FormatPAX}
		switch e.typ {
		case tar.TypeDir:
			if h.Mode == 0 {
				h.Mode = 0o755
			}
			if !strings.HasSuffix(h.Name, "/") {
				h.Name += "/"
			}
		case tar.TypeReg:
			h.Size = int64(len(e.body))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		case tar.TypeSymlink:
			h.Mode = 0o777
		case tar.TypeFifo, tar.TypeLink:
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		case tar.TypeChar, tar.TypeBlock:
			h.Devmajor, h.Devminor = 1, 3
			if h.Mode == 0 {
				h.Mode = 0o666
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func plBusyboxTar(t testing.TB) []byte {
	t.Helper()
	return plTar(t, plBusyboxEnts(t)...)
}

// plLayer is a layer blob with its uncompressed tar.
type plLayer struct {
	tar       []byte
	blob      []byte
	mediaType string
}

func plGzip(t testing.TB, tarb []byte) plLayer {
	return plLayer{tar: tarb, blob: gzipBytes(t, tarb), mediaType: ocispec.MediaTypeImageLayerGzip}
}

func plZstd(t testing.TB, tarb []byte) plLayer {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(tarb)
	zw.Close()
	return plLayer{tar: tarb, blob: buf.Bytes(), mediaType: ocispec.MediaTypeImageLayerZstd}
}

// plImage is an image built in memory.
type plImage struct {
	manifest  []byte
	mediaType string
	digest    digest.Digest
	config    []byte
	layers    []plLayer
	descs     []ocispec.Descriptor
	platform  ocispec.Platform
}

func (img plImage) id() string { return digest.FromBytes(img.config).String() }

func plBuild(t testing.TB, arch string, layers ...plLayer) plImage {
	t.Helper()
	img := plImage{layers: layers, mediaType: ocispec.MediaTypeImageManifest, platform: ocispec.Platform{OS: "linux", Architecture: arch}}
	created := epoch.UTC()
	cfg := ocispec.Image{Created: &created, Platform: img.platform, RootFS: ocispec.RootFS{Type: "layers"},
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}}}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l.tar))
		img.descs = append(img.descs, ocispec.Descriptor{MediaType: l.mediaType, Digest: digest.FromBytes(l.blob), Size: int64(len(l.blob))})
	}
	img.config, _ = json.Marshal(cfg)
	m := ocispec.Manifest{MediaType: img.mediaType, Layers: img.descs,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(img.config), Size: int64(len(img.config))}}
	m.SchemaVersion = 2
	img.manifest, _ = json.Marshal(m)
	img.digest = digest.FromBytes(img.manifest)
	return img
}

var plClient = client.New(client.Options{Credentials: client.CredentialFunc(func(string) (string, string, error) { return "", "", nil })})

// plPush pushes img's blobs and manifest to addr/repo under tag ("" pushes by digest).
func plPush(t testing.TB, addr, repo, tag string, img plImage) {
	t.Helper()
	ctx := context.Background()
	r, err := client.ParseRepository(addr + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[digest.Digest][]byte{digest.FromBytes(img.config): img.config}
	for _, l := range img.layers {
		blobs[digest.FromBytes(l.blob)] = l.blob
	}
	for d, b := range blobs {
		desc := ocispec.Descriptor{Digest: d, Size: int64(len(b))}
		if ok, _ := plClient.BlobExists(ctx, r, desc); ok {
			continue
		}
		if err := plClient.PushBlob(ctx, r, desc, bytes.NewReader(b)); err != nil {
			t.Fatalf("push blob %s to %s: %v", d, r.Name(), err)
		}
	}
	ref := r.WithDigest(img.digest)
	if tag != "" {
		ref = r.WithTag(tag)
	}
	if _, err := plClient.PutManifest(ctx, ref, img.mediaType, img.manifest); err != nil {
		t.Fatalf("push manifest %s: %v", ref, err)
	}
}

// plPushIndex pushes an OCI index of already pushed images.
func plPushIndex(t testing.TB, addr, repo, tag string, imgs ...plImage) digest.Digest {
	t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for _, img := range imgs {
		p := img.platform
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: img.mediaType, Digest: img.digest, Size: int64(len(img.manifest)), Platform: &p})
	}
	b, _ := json.Marshal(idx)
	r, _ := client.ParseRepository(addr + "/" + repo)
	if _, err := plClient.PutManifest(context.Background(), r.WithTag(tag), ocispec.MediaTypeImageIndex, b); err != nil {
		t.Fatalf("push index: %v", err)
	}
	return digest.FromBytes(b)
}

// plWhiteoutLayers are three layers exercising whiteouts, an opaque directory, hardlinks
// (within a layer, and broken by a later layer), symlinks, modes, owners and a fifo.
func plWhiteoutLayers(t testing.TB) [][]byte {
	l1 := plTar(t, plD("etc"), plF("etc/os-release", "ID=berth\n"), plD("a"), plF("a/keep", "keep"), plF("a/gone", "gone"),
		plD("a/sub"), plF("a/sub/x", "x"), plD("opq"), plF("opq/old1", "1"), plD("opq/sub"), plF("opq/sub/deep", "d"),
		plF("hard1", "first version"), plHL("hard2", "hard1"), plS("sym", "a/keep"), plS("abs-sym", "/etc/os-release"),
		plEnt{name: "owned", typ: tar.TypeReg, body: "owned", mode: 0o640, uid: 1000, gid: 1001},
		plEnt{name: "setuid", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o4755},
		plEnt{name: "sticky", typ: tar.TypeDir, mode: 0o1777},
		plEnt{name: "pipe", typ: tar.TypeFifo, mode: 0o600})
	l2 := plTar(t, plD("a"), plWh("a/.wh.gone"), plWh("a/.wh.sub"), plD("opq"), plWh("opq/.wh..wh..opq"), plF("opq/new", "new"),
		plF("hard1", "second version"), plD("b"), plF("b/file", "bfile"), plHL("b/h2", "b/file"), plS("dangling", "/nonexistent"),
		plEnt{name: "owned", typ: tar.TypeReg, body: "re-owned", mode: 0o600, uid: 2000, gid: 2000})
	l3 := plTar(t, plWh(".wh.sym"), plD("a"), plF("a/sub", "now a file"), plWh("b/.wh.h2"), plF("c", strings.Repeat("c", 100000)))
	return [][]byte{l1, l2, l3}
}

// ---------------------------------------------------------------------------------------------
// trees

// plTreeDir describes every entry under root: type, mode, owner, size and content hash, link
// target, and the other names of a hardlinked file.
func plTreeDir(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	groups := map[[2]uint64][]string{}
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("%s mode=%04o uid=%d gid=%d", plTypeName(st.Mode&unix.S_IFMT), st.Mode&0o7777, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" size=%d sha=%s", len(b), plSum(b))
			key := [2]uint64{st.Dev, st.Ino}
			groups[key] = append(groups[key], rel)
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		plAddLinks(out, g)
	}
	return out
}

// plTreeTar describes the entries of a tar stream (docker export) like plTreeDir; names
// matching skip are left out.
func plTreeTar(t *testing.T, data []byte, skip func(string) bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	files := map[string]string{} // name -> description of regular files, for hardlinks
	groups := map[string][]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if name == "" || name == "." || skip(name) {
			continue
		}
		mode := h.Mode & 0o7777
		var desc string
		switch h.Typeflag {
		case tar.TypeReg:
			b, _ := io.ReadAll(tr)
			desc = fmt.Sprintf("file mode=%04o uid=%d gid=%d size=%d sha=%s", mode, h.Uid, h.Gid, len(b), plSum(b))
			files[name] = desc
			groups[name] = []string{name}
		case tar.TypeLink:
			target := strings.TrimPrefix(h.Linkname, "./")
			desc = files[target]
			groups[target] = append(groups[target], name)
		case tar.TypeDir:
			desc = fmt.Sprintf("dir mode=%04o uid=%d gid=%d", mode, h.Uid, h.Gid)
		case tar.TypeSymlink:
			desc = fmt.Sprintf("symlink mode=%04o uid=%d gid=%d -> %s", 0o777, h.Uid, h.Gid, h.Linkname)
		case tar.TypeFifo:
			desc = fmt.Sprintf("fifo mode=%04o uid=%d gid=%d", mode, h.Uid, h.Gid)
		case tar.TypeChar:
			desc = fmt.Sprintf("chardev mode=%04o uid=%d gid=%d", mode, h.Uid, h.Gid)
		case tar.TypeBlock:
			desc = fmt.Sprintf("blockdev mode=%04o uid=%d gid=%d", mode, h.Uid, h.Gid)
		default:
			desc = fmt.Sprintf("type%c", h.Typeflag)
		}
		out[name] = desc
	}
	for _, g := range groups {
		if len(g) > 1 {
			plAddLinks(out, g)
		}
	}
	return out
}

func plAddLinks(out map[string]string, group []string) {
	if len(group) < 2 {
		return
	}
	sort.Strings(group)
	for _, n := range group {
		out[n] += " links=" + strings.Join(group, ",")
	}
}

func plTypeName(m uint32) string {
	switch m {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFCHR:
		return "chardev"
	case unix.S_IFBLK:
		return "blockdev"
	}
	return fmt.Sprintf("type%o", m)
}

func plSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// plDockerInit are the paths Docker's container init layer adds to an exported container.
func plDockerInit(name string) bool {
	switch name {
	case ".dockerenv", "dev", "proc", "sys", "etc/hosts", "etc/hostname", "etc/resolv.conf", "etc/mtab":
		return true
	}
	return strings.HasPrefix(name, "dev/") || strings.HasPrefix(name, "proc/") || strings.HasPrefix(name, "sys/")
}

// plDockerTree pulls ref with Docker and describes `docker create` + `docker export` of it.
func plDockerTree(t *testing.T, ref string) map[string]string {
	t.Helper()
	docker := needDocker(t)
	run(t, docker, "pull", "-q", ref)
	t.Cleanup(func() { tryRun(t, cmdOpts{}, docker, "rmi", "-f", ref) })
	cid := strings.TrimSpace(run(t, docker, "create", ref, "/nonexistent-command"))
	defer tryRun(t, cmdOpts{}, docker, "rm", "-f", cid)
	data := run(t, docker, "export", cid)
	return plTreeTar(t, []byte(data), plDockerInit)
}

// plTarTree applies uncompressed layers in order with GNU tar, whiteouts done by hand as
// Docker defines them, and describes the result.
func plTarTree(t *testing.T, layers [][]byte) map[string]string {
	t.Helper()
	dir := t.TempDir()
	ref := filepath.Join(dir, "tree")
	os.MkdirAll(ref, 0o755)
	for i, l := range layers {
		snRefApplyWhiteouts(t, ref, l)
		p := filepath.Join(dir, fmt.Sprintf("layer%d.tar", i))
		if err := os.WriteFile(p, l, 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "tar", "-x", "-p", "--numeric-owner", "-f", p, "-C", ref, "--exclude=.wh.*")
	}
	return plTreeDir(t, ref)
}

func plCompareTrees(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	var diffs []string
	for _, k := range sortedKeys(want) {
		if got[k] != want[k] {
			diffs = append(diffs, fmt.Sprintf("%s:\n   pull-run: %s\n  reference: %s", k, orNone(got[k]), want[k]))
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s:\n   pull-run: %s\n  reference: (none)", k, got[k]))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%s: the unpacked tree differs from the reference in %d entries:\n%s", what, len(diffs), strings.Join(diffs, "\n"))
	} else {
		t.Logf("%s: %d entries identical to the reference", what, len(want))
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// ---------------------------------------------------------------------------------------------
// tests

// The unpacked trees match what Docker (or GNU tar) makes of the same images, from Berth and
// from docker-registry.
func TestPullTrees(t *testing.T) {
	for _, kind := range []string{"berth", "docker-registry"} {
		t.Run(kind, func(t *testing.T) {
			var addr string
			if kind == "berth" {
				addr = startBerth(t, t.TempDir())
			} else {
				addr = startDockerRegistry(t, t.TempDir())
			}
			h := newPLHost(t)

			t.Run("busybox", func(t *testing.T) {
				img := plBuild(t, "amd64", plGzip(t, plBusyboxTar(t)))
				plPush(t, addr, "e2e/busybox", "1", img)
				ref := addr + "/e2e/busybox:1"
				out := h.must("pull", ref)
				for _, want := range []string{"1: Pulling from e2e/busybox\n", ": Pull complete\n", "Digest: " + img.digest.String() + "\n",
					"Status: Downloaded newer image for " + ref + "\n" + ref + "\n"} {
					if !strings.Contains(out, want) {
						t.Errorf("pull output lacks %q:\n%s", want, out)
					}
				}
				out = h.must("pull", ref)
				if !strings.Contains(out, ": Already exists\n") || !strings.Contains(out, "Status: Image is up to date for "+ref) {
					t.Errorf("second pull:\n%s", out)
				}
				plCompareTrees(t, "busybox", plTreeDir(t, h.mount(ref)), plDockerTree(t, ref))
				if got := h.must("pull", "-q", ref); got != ref+"\n" {
					t.Errorf("pull -q printed %q", got)
				}
			})

			t.Run("whiteouts", func(t *testing.T) {
				var layers []plLayer
				for _, l := range plWhiteoutLayers(t) {
					layers = append(layers, plGzip(t, l))
				}
				img := plBuild(t, "amd64", layers...)
				plPush(t, addr, "e2e/whiteouts", "1", img)
				ref := addr + "/e2e/whiteouts:1"
				h.must("pull", ref)
				merged := plTreeDir(t, h.mount(ref))
				for _, gone := range []string{"a/gone", "a/sub/x", "opq/old1", "opq/sub", "sym", "b/h2"} {
					if _, ok := merged[gone]; ok {
						t.Errorf("%s is visible despite its whiteout", gone)
					}
				}
				plCompareTrees(t, "whiteouts vs docker", merged, plDockerTree(t, ref))
				plCompareTrees(t, "whiteouts vs tar", merged, plTarTree(t, plWhiteoutLayers(t)))
			})

			t.Run("zstd", func(t *testing.T) {
				tars := [][]byte{plBusyboxTar(t), plTar(t, plD("etc"), plF("etc/zstd", strings.Repeat("zstd layer ", 5000)))}
				img := plBuild(t, "amd64", plZstd(t, tars[0]), plZstd(t, tars[1]))
				plPush(t, addr, "e2e/zstd", "1", img)
				ref := addr + "/e2e/zstd:1"
				h.must("pull", ref)
				// Docker 20.10 (Debian 12) cannot pull zstd layers: GNU tar is the reference.
				plCompareTrees(t, "zstd", plTreeDir(t, h.mount(ref)), plTarTree(t, tars))
			})

			t.Run("docker push", func(t *testing.T) {
				docker := needDocker(t)
				dir := t.TempDir()
				tarPath := filepath.Join(dir, "rootfs.tar")
				if err := os.WriteFile(tarPath, plTar(t, append(plBusyboxEnts(t), plF("etc/pushed", "by docker"))...), 0o644); err != nil {
					t.Fatal(err)
				}
				ref := addr + "/e2e/pushed:" + uniq()
				run(t, docker, "import", "--change", "CMD [\"/bin/sh\"]", tarPath, ref)
				t.Cleanup(func() { tryRun(t, cmdOpts{}, docker, "rmi", "-f", ref) })
				run(t, docker, "push", ref)
				run(t, docker, "rmi", ref)
				h.must("pull", ref)
				mt := h.inspect(ref)
				if mt["Architecture"] != "amd64" || mt["Os"] != "linux" {
					t.Errorf("inspect: %v", mt)
				}
				plCompareTrees(t, "docker push", plTreeDir(t, h.mount(ref)), plDockerTree(t, ref))
			})

			t.Run("multi-platform", func(t *testing.T) {
				amd := plBuild(t, "amd64", plGzip(t, plTar(t, plD("etc"), plF("etc/arch", "amd64"))))
				arm := plBuild(t, "arm64", plGzip(t, plTar(t, plD("etc"), plF("etc/arch", "arm64"))))
				arm.platform.Variant = "v8"
				plPush(t, addr, "e2e/multi", "", amd)
				plPush(t, addr, "e2e/multi", "", arm)
				idx := plPushIndex(t, addr, "e2e/multi", "1", amd, arm)
				ref := addr + "/e2e/multi:1"
				out := h.must("pull", ref)
				if !strings.Contains(out, "Digest: "+idx.String()) {
					t.Errorf("pull of an index does not print the index digest %s:\n%s", idx, out)
				}
				if got := h.inspect(ref); got["Id"] != amd.id() || got["Architecture"] != "amd64" {
					t.Errorf("default platform picked %v (%v), want the amd64 image %s", got["Id"], got["Architecture"], amd.id())
				}
				b, _ := os.ReadFile(filepath.Join(h.mount(ref), "etc", "arch"))
				if string(b) != "amd64" {
					t.Errorf("etc/arch = %q", b)
				}
				h.must("pull", "--platform", "linux/arm64", ref)
				if got := h.inspect(ref); got["Id"] != arm.id() || got["Architecture"] != "arm64" {
					t.Errorf("--platform linux/arm64 picked %v (%v), want %s", got["Id"], got["Architecture"], arm.id())
				}
				h.mustFail([]string{"pull", "--platform", "linux/s390x", ref}, ref, "linux/s390x", "linux/amd64", "linux/arm64")
			})
		})
	}
}

// plBusyboxEnts is busyboxRootfs as plEnt values.
func plBusyboxEnts(t testing.TB) []plEnt {
	var ents []plEnt
	for _, e := range busyboxRootfs(t) {
		switch {
		case e.Dir:
			ents = append(ents, plEnt{name: e.Name, typ: tar.TypeDir, mode: e.Mode})
		case e.Link != "":
			ents = append(ents, plS(e.Name, e.Link))
		default:
			ents = append(ents, plEnt{name: e.Name, typ: tar.TypeReg, body: string(e.Body), mode: e.Mode})
		}
	}
	return ents
}

// ---------------------------------------------------------------------------------------------
// a proxy in front of a registry

// plProxy forwards to a registry, counts blob GETs, and lets a test replace answers (hook)
// or wrap the bodies of blob downloads (body).
type plProxy struct {
	Addr string

	mu   sync.Mutex
	gets map[string]int
	hook func(w http.ResponseWriter, r *http.Request) bool
	body func(r *http.Request, dgst string, rc io.ReadCloser) io.ReadCloser
}

var plBlobPathRE = regexp.MustCompile(`^/v2/.+/blobs/(sha256:[0-9a-f]{64})$`)

func startPLProxy(t *testing.T, target string) *plProxy {
	t.Helper()
	p := &plProxy{gets: map[string]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: target})
			pr.Out.Host = pr.In.Host
		},
		ModifyResponse: func(resp *http.Response) error {
			m := plBlobPathRE.FindStringSubmatch(resp.Request.URL.Path)
			if m == nil || resp.Request.Method != http.MethodGet {
				return nil
			}
			p.mu.Lock()
			wrap := p.body
			p.mu.Unlock()
			if wrap != nil && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent) {
				resp.Body = wrap(resp.Request, m[1], resp.Body)
			}
			return nil
		},
		ErrorLog: nil,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := plBlobPathRE.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
			p.mu.Lock()
			p.gets[m[1]]++
			p.mu.Unlock()
		}
		p.mu.Lock()
		hook := p.hook
		p.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.Addr = strings.TrimPrefix(srv.URL, "http://")
	return p
}

func (p *plProxy) blobGets(d string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gets[d]
}

func (p *plProxy) set(hook func(w http.ResponseWriter, r *http.Request) bool, body func(r *http.Request, dgst string, rc io.ReadCloser) io.ReadCloser) {
	p.mu.Lock()
	p.hook, p.body = hook, body
	p.mu.Unlock()
}

// funcReader adapts functions to io.ReadCloser.
type funcReader struct {
	read  func([]byte) (int, error)
	close func() error
}

func (f funcReader) Read(b []byte) (int, error) { return f.read(b) }
func (f funcReader) Close() error               { return f.close() }

func plRandom(n int, seed uint64) []byte { return randomBytes(seed, n) }

// Two pull-run processes pulling two images that share a base layer fetch it once.
func TestPullConcurrentProcesses(t *testing.T) {
	addr := startBerth(t, t.TempDir())
	proxy := startPLProxy(t, addr)
	base := plTar(t, plD("etc"), plF("etc/base.bin", string(plRandom(6<<20, 1))))
	a := plBuild(t, "amd64", plGzip(t, base), plGzip(t, plTar(t, plF("a", "a"))))
	b := plBuild(t, "amd64", plGzip(t, base), plGzip(t, plTar(t, plF("b", "b"))))
	plPush(t, addr, "e2e/a", "1", a)
	plPush(t, addr, "e2e/b", "1", b)
	baseDigest := a.descs[0].Digest.String()
	// Slow the shared layer down so that both pulls are at it together.
	proxy.set(nil, func(r *http.Request, d string, rc io.ReadCloser) io.ReadCloser {
		if d != baseDigest {
			return rc
		}
		return funcReader{read: func(b []byte) (int, error) {
			time.Sleep(5 * time.Millisecond)
			return rc.Read(b[:min(len(b), 64<<10)])
		}, close: rc.Close}
	})
	h := newPLHost(t)
	refs := []string{proxy.Addr + "/e2e/a:1", proxy.Addr + "/e2e/b:1"}
	var wg sync.WaitGroup
	outs := make([]string, 2)
	codes := make([]int, 2)
	for i, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := h.command(context.Background(), "pull", ref)
			var buf bytes.Buffer
			cmd.Stdout, cmd.Stderr = &buf, &buf
			err := cmd.Run()
			outs[i] = buf.String()
			if err != nil {
				codes[i] = 1
			}
		}()
	}
	wg.Wait()
	for i := range refs {
		t.Logf("pull %s:\n%s", refs[i], outs[i])
		if codes[i] != 0 {
			t.Fatalf("pull %s failed", refs[i])
		}
	}
	if n := proxy.blobGets(baseDigest); n != 1 {
		t.Errorf("the shared layer %s was fetched %d times, want 1", baseDigest, n)
	}
	for _, img := range []plImage{a, b} {
		if n := proxy.blobGets(img.descs[1].Digest.String()); n != 1 {
			t.Errorf("layer %s fetched %d times", img.descs[1].Digest, n)
		}
	}
	if !strings.Contains(outs[0]+outs[1], ": Already exists") {
		t.Errorf("neither pull reports the shared layer as already there")
	}
	want := append(h.chainIDs(refs[0]), h.chainIDs(refs[1])[1])
	sort.Strings(want)
	if got := h.snapshots(); !slices.Equal(got, want) {
		t.Errorf("snapshots %v, want %v", got, want)
	}
	if imgs := h.images(); len(imgs) != 2 {
		t.Errorf("images %v", imgs)
	}
}

// Bad input: each a clear error naming the reference, exit 1, nothing half-stored.
func TestPullBadInput(t *testing.T) {
	addr := startBerth(t, t.TempDir())
	proxy := startPLProxy(t, addr)
	h := newPLHost(t)
	good := plTar(t, plD("etc"), plF("etc/f", "fine"))
	big := plTar(t, plD("data"), plF("data/blob", string(plRandom(3<<20, 2))))
	img := plBuild(t, "amd64", plGzip(t, good), plGzip(t, big))
	plPush(t, addr, "e2e/img", "1", img)
	ref := proxy.Addr + "/e2e/img:1"
	bigDigest := img.descs[1].Digest.String()
	nothingStored := func(what string) {
		t.Helper()
		if imgs := h.images(); len(imgs) != 0 {
			t.Errorf("%s: images shows %v", what, imgs)
		}
		h.snapshots() // checks tmp/ is empty
	}

	t.Run("tampered blob", func(t *testing.T) {
		proxy.set(nil, func(r *http.Request, d string, rc io.ReadCloser) io.ReadCloser {
			if d != bigDigest {
				return rc
			}
			var n int64
			return funcReader{read: func(b []byte) (int, error) {
				k, err := rc.Read(b)
				for i := 0; i < k; i++ {
					if n+int64(i) == 1<<20 {
						b[i] ^= 0x55
					}
				}
				n += int64(k)
				return k, err
			}, close: rc.Close}
		})
		h.mustFail([]string{"pull", ref}, ref, bigDigest, "digest mismatch")
		nothingStored("tampered blob")
		if slices.Contains(h.snapshots(), h.expectChain(img, 1)) {
			t.Error("the tampered layer was committed")
		}
	})

	t.Run("truncated once", func(t *testing.T) {
		var cuts atomic.Int32
		proxy.set(nil, func(r *http.Request, d string, rc io.ReadCloser) io.ReadCloser {
			if d != bigDigest || r.Header.Get("Range") != "" || cuts.Add(1) > 1 {
				return rc
			}
			var n int
			return funcReader{read: func(b []byte) (int, error) {
				if n >= 1<<20 {
					return 0, io.ErrUnexpectedEOF
				}
				k, err := rc.Read(b[:min(len(b), 1<<20-n)])
				n += k
				return k, err
			}, close: rc.Close}
		})
		h.must("pull", ref)
		if cuts.Load() < 1 {
			t.Error("the download was never cut")
		}
		if imgs := h.images(); len(imgs) != 1 {
			t.Errorf("images %v", imgs)
		}
		h.must("rmi", ref)
		h.must("image", "prune", "-a", "-f")
		if s := h.snapshots(); len(s) != 0 {
			t.Errorf("snapshots left: %v", s)
		}
	})

	t.Run("truncated always", func(t *testing.T) {
		proxy.set(nil, func(r *http.Request, d string, rc io.ReadCloser) io.ReadCloser {
			if d != bigDigest {
				return rc
			}
			var n int
			return funcReader{read: func(b []byte) (int, error) {
				if n >= 256<<10 {
					return 0, io.ErrUnexpectedEOF
				}
				k, err := rc.Read(b[:min(len(b), 256<<10-n)])
				n += k
				return k, err
			}, close: rc.Close}
		})
		h.mustFail([]string{"pull", ref}, ref, bigDigest)
		nothingStored("truncated always")
	})
	proxy.set(nil, nil)

	t.Run("manifest over 4 MiB", func(t *testing.T) {
		huge := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":1},"layers":[],"annotations":{"x":"%s"}}`,
			ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, digest.FromString("x"), strings.Repeat("A", 5<<20))
		for _, chunked := range []bool{false, true} {
			proxy.set(func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasSuffix(r.URL.Path, "/e2e/huge/manifests/1") {
					return false
				}
				w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
				if !chunked {
					w.Header().Set("Content-Length", strconv.Itoa(len(huge)))
				}
				if r.Method != http.MethodHead {
					w.(http.Flusher).Flush()
					io.WriteString(w, huge)
				}
				return true
			}, nil)
			h.mustFail([]string{"pull", proxy.Addr + "/e2e/huge:1"}, proxy.Addr+"/e2e/huge:1", "4 MiB")
		}
		nothingStored("huge manifest")
	})

	t.Run("no matching platform", func(t *testing.T) {
		proxy.set(nil, nil)
		arm := plBuild(t, "arm64", plGzip(t, good))
		s390 := plBuild(t, "s390x", plGzip(t, good))
		plPush(t, addr, "e2e/foreign", "", arm)
		plPush(t, addr, "e2e/foreign", "", s390)
		plPushIndex(t, addr, "e2e/foreign", "1", arm, s390)
		r := proxy.Addr + "/e2e/foreign:1"
		h.mustFail([]string{"pull", r}, r, "no matching manifest for linux/amd64", "linux/arm64", "linux/s390x")
		nothingStored("no matching platform")
	})

	t.Run("unknown media types", func(t *testing.T) {
		proxy.set(nil, nil)
		wt := plTar(t, plF("weird", "lz4?"))
		weird := plBuild(t, "amd64", plLayer{tar: wt, blob: gzipBytes(t, wt), mediaType: "application/vnd.example.layer.v1.tar+lz4"})
		plPush(t, addr, "e2e/weird", "1", weird)
		r := proxy.Addr + "/e2e/weird:1"
		h.mustFail([]string{"pull", r}, r, "unsupported layer media type", "application/vnd.example.layer.v1.tar+lz4")
		if n := proxy.blobGets(weird.descs[0].Digest.String()); n != 0 {
			t.Errorf("a layer of unknown type was fetched %d times", n)
		}
		proxy.set(func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.Contains(r.URL.Path, "/e2e/artifact/manifests/") {
				return false
			}
			w.Header().Set("Content-Type", "application/vnd.example.artifact.v1+json")
			io.WriteString(w, `{"schemaVersion":2,"mediaType":"application/vnd.example.artifact.v1+json","blobs":[]}`)
			return true
		}, nil)
		r = proxy.Addr + "/e2e/artifact:1"
		h.mustFail([]string{"pull", r}, r, "application/vnd.example.artifact.v1+json")
		nothingStored("unknown media types")
	})

	t.Run("HTML", func(t *testing.T) {
		proxy.set(func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, "<!DOCTYPE html><html><head><title>Sign in</title></head><body>Portal</body></html>")
			return true
		}, nil)
		h.mustFail([]string{"pull", ref}, ref, "HTML")
		nothingStored("HTML")
	})
	proxy.set(nil, nil)
	// After all that, the image pulls.
	h.must("pull", ref)
}

// expectChain returns the chain ID of layer i of img.
func (h *plHost) expectChain(img plImage, i int) string {
	var diffIDs []digest.Digest
	for _, l := range img.layers {
		diffIDs = append(diffIDs, digest.FromBytes(l.tar))
	}
	return snapshot.ChainIDs(diffIDs)[i].String()
}

// A pull killed with SIGKILL mid-download leaves nothing visible, and the next pull completes.
func TestPullInterrupted(t *testing.T) {
	addr := startBerth(t, t.TempDir())
	proxy := startPLProxy(t, addr)
	big := plTar(t, plD("data"), plF("data/blob", string(plRandom(8<<20, 3))))
	img := plBuild(t, "amd64", plGzip(t, plTar(t, plD("etc"), plF("etc/f", "f"))), plGzip(t, big))
	plPush(t, addr, "e2e/slow", "1", img)
	bigDigest := img.descs[1].Digest.String()
	var sent atomic.Int64
	proxy.set(nil, func(r *http.Request, d string, rc io.ReadCloser) io.ReadCloser {
		if d != bigDigest {
			return rc
		}
		return funcReader{read: func(b []byte) (int, error) {
			time.Sleep(20 * time.Millisecond)
			k, err := rc.Read(b[:min(len(b), 32<<10)])
			sent.Add(int64(k))
			return k, err
		}, close: rc.Close}
	})
	h := newPLHost(t)
	ref := proxy.Addr + "/e2e/slow:1"
	cmd := h.command(context.Background(), "pull", ref)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for sent.Load() < 1<<20 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the download did not start:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("kill -9 pull-run (pid %d) after %d bytes of the layer", cmd.Process.Pid, sent.Load())
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	t.Logf("output before the kill:\n%s", out.String())
	if tmp, _ := os.ReadDir(filepath.Join(h.root, "snapshots", "tmp")); len(tmp) == 0 {
		t.Error("no half-made snapshot in tmp/: was the pull killed mid-layer?")
	}
	// The next command cleans it up; nothing of the dead pull is visible.
	if imgs := h.images(); len(imgs) != 0 {
		t.Errorf("images after kill -9: %v", imgs)
	}
	h.snapshots()
	proxy.set(nil, nil)
	h.must("pull", ref)
	h.snapshots() // tmp/ cleaned
	if imgs := h.images(); len(imgs) != 1 {
		t.Errorf("images after the second pull: %v", imgs)
	}
	b, err := os.ReadFile(filepath.Join(h.mount(ref), "data", "blob"))
	if err != nil || !bytes.Equal(b, plRandom(8<<20, 3)) {
		t.Errorf("data/blob after the resumed pull: %d bytes, %v", len(b), err)
	}
	// The dead pull's lease goes at the next collection.
	h.must("image", "prune", "-f")
	if l, _ := os.ReadDir(filepath.Join(h.root, "image", "leases")); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
}

// Hostile layers are refused and write nothing outside the snapshot store.
func TestPullHostileLayers(t *testing.T) {
	addr := startBerth(t, t.TempDir())
	h := newPLHost(t)
	sentinel := filepath.Join(t.TempDir(), "sentinel")
	os.MkdirAll(sentinel, 0o755)
	os.WriteFile(filepath.Join(sentinel, "target"), []byte("original"), 0o644)
	before := plTreeDir(t, sentinel)
	up := strings.Repeat("../", 24)
	rel := strings.TrimPrefix(sentinel, "/")
	cases := []struct {
		name string
		tar  []byte
	}{
		{"dotdot", plTar(t, plF(up+rel+"/pwned", "x"))},
		{"absolute dotdot", plTar(t, plF("/"+up+rel+"/pwned", "x"))},
		{"symlink then write", plTar(t, plS("link", sentinel), plF("link/pwned", "x"))},
		{"relative symlink then write", plTar(t, plS("link", up+rel), plF("link/pwned", "x"))},
		{"symlink dir then overwrite", plTar(t, plS("link", sentinel), plF("link/target", "overwritten"))},
		{"hardlink outside", plTar(t, plHL("hl", up+rel+"/target"))},
		{"hardlink absolute", plTar(t, plHL("hl", sentinel+"/target"), plF("hl", "overwritten"))},
		{"whiteout of dotdot", plTar(t, plD("a"), plWh("a/.wh..."))},
		{"whiteout of dotdot in root", plTar(t, plWh(".wh..."))},
		{"whiteout of dot", plTar(t, plD("a"), plWh("a/.wh.."))},
		{"device node", plTar(t, plEnt{name: "null", typ: tar.TypeChar})},
		{"block device", plTar(t, plEnt{name: "sda", typ: tar.TypeBlock})},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := plBuild(t, "amd64", plGzip(t, c.tar))
			repo := fmt.Sprintf("e2e/hostile%d", i)
			plPush(t, addr, repo, "1", img)
			ref := addr + "/" + repo + ":1"
			errs := h.mustFail([]string{"pull", ref}, ref, img.descs[0].Digest.String())
			if !strings.Contains(errs, "unsafe") && !strings.Contains(errs, "refused") {
				t.Errorf("the error does not say the layer was refused: %s", errs)
			}
			plCompareTrees(t, "sentinel", plTreeDir(t, sentinel), before)
			if imgs := h.images(); len(imgs) != 0 {
				t.Errorf("images %v", imgs)
			}
			if s := h.snapshots(); len(s) != 0 {
				t.Errorf("snapshots %v", s)
			}
		})
	}
	// A plain absolute name is taken as relative to the layer root, as Docker does.
	img := plBuild(t, "amd64", plGzip(t, plTar(t, plF("/etc/abs", "inside"))))
	plPush(t, addr, "e2e/abs", "1", img)
	h.must("pull", addr+"/e2e/abs:1")
	b, err := os.ReadFile(filepath.Join(h.mount(addr+"/e2e/abs:1"), "etc", "abs"))
	if err != nil || string(b) != "inside" {
		t.Errorf("/etc/abs: %q %v", b, err)
	}
	if _, err := os.Stat("/etc/abs"); err == nil {
		t.Error("/etc/abs was written on the host")
	}
}

// rmi and prune free exactly the snapshots no image uses.
func TestPullRmiPrune(t *testing.T) {
	addr := startBerth(t, t.TempDir())
	h := newPLHost(t)
	base := plGzip(t, plBusyboxTar(t))
	a := plBuild(t, "amd64", base, plGzip(t, plTar(t, plF("a", "aaaa"))))
	b := plBuild(t, "amd64", base, plGzip(t, plTar(t, plF("b", "b"))), plGzip(t, plTar(t, plF("b2", "b2"))))
	old := plBuild(t, "amd64", base, plGzip(t, plTar(t, plF("v", "old"))))
	cur := plBuild(t, "amd64", base, plGzip(t, plTar(t, plF("v", "current"))))
	plPush(t, addr, "e2e/a", "1", a)
	plPush(t, addr, "e2e/b", "1", b)
	plPush(t, addr, "e2e/app", "latest", old)
	for _, r := range []string{"e2e/a:1", "e2e/b:1", "e2e/app"} {
		h.must("pull", "-q", addr+"/"+r)
	}
	plPush(t, addr, "e2e/app", "latest", cur)
	h.must("pull", "-q", addr+"/e2e/app")

	chains := func(img plImage) []string {
		var out []string
		for i := range img.layers {
			out = append(out, h.expectChain(img, i))
		}
		return out
	}
	union := func(imgs ...plImage) []string {
		m := map[string]bool{}
		for _, img := range imgs {
			for _, c := range chains(img) {
				m[c] = true
			}
		}
		return sortedKeys(m)
	}
	if got := h.snapshots(); !slices.Equal(got, union(a, b, old, cur)) {
		t.Fatalf("snapshots %v, want %v", got, union(a, b, old, cur))
	}
	out := h.must("images")
	if !strings.Contains(out, "<none>") {
		t.Errorf("the replaced image is not listed as dangling:\n%s", out)
	}

	out = h.must("rmi", addr+"/e2e/a:1")
	if !strings.Contains(out, "Untagged: "+addr+"/e2e/a:1\n") || !strings.Contains(out, "Deleted: "+a.id()+"\n") ||
		!strings.Contains(out, "Deleted: "+chains(a)[1]+"\n") || strings.Contains(out, chains(a)[0]) {
		t.Errorf("rmi output:\n%s", out)
	}
	if got := h.snapshots(); !slices.Equal(got, union(b, old, cur)) {
		t.Errorf("after rmi a: snapshots %v, want %v", got, union(b, old, cur))
	}
	h.mustFail([]string{"rmi", addr + "/e2e/a:1"}, "No such image: "+addr+"/e2e/a:1")

	out = h.must("image", "prune", "-f")
	if !strings.Contains(out, "deleted: "+old.id()) || !strings.Contains(out, "Total reclaimed space: 3B") {
		t.Errorf("prune output:\n%s", out)
	}
	if got := h.snapshots(); !slices.Equal(got, union(b, cur)) {
		t.Errorf("after prune: snapshots %v, want %v", got, union(b, cur))
	}
	h.must("rmi", b.id()[len("sha256:"):][:12])
	if got := h.snapshots(); !slices.Equal(got, union(cur)) {
		t.Errorf("after rmi b by ID: snapshots %v, want %v", got, union(cur))
	}
	h.must("image", "prune", "-a", "-f")
	if got := h.snapshots(); len(got) != 0 {
		t.Errorf("after prune -a: snapshots %v", got)
	}
	if imgs := h.images(); len(imgs) != 0 {
		t.Errorf("images after prune -a: %v", imgs)
	}
	if c, _ := os.ReadDir(filepath.Join(h.root, "image", "content", "sha256")); len(c) != 0 {
		t.Errorf("content left: %d files", len(c))
	}
}
