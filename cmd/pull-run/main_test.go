package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/registry"
	"github.com/berth-registry/berth/registry/client"
	"github.com/berth-registry/berth/registry/store"
	"github.com/berth-registry/berth/runner/image"
	"github.com/berth-registry/berth/storage/filesystem"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 4261550: "4.26MB", 1234567890: "1.23GB", 12345: "12.3kB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
	if got := humanSizePrecision(12345678, 4); got != "12.35MB" {
		t.Errorf("4 digits: %q", got)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		500 * time.Millisecond: "Less than a second", time.Second: "1 second", 30 * time.Second: "30 seconds",
		time.Minute: "About a minute", 5 * time.Minute: "5 minutes", time.Hour: "About an hour",
		2 * time.Hour: "2 hours", 72 * time.Hour: "3 days", 15 * 24 * time.Hour: "2 weeks",
		90 * 24 * time.Hour: "3 months", 800 * 24 * time.Hour: "2 years",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestProgressBar(t *testing.T) {
	got := progressBar(12_300_000, 45_600_000, 120, 0)
	want := "[=============>" + strings.Repeat(" ", 37) + "]   12.3MB/45.6MB"
	if got != want {
		t.Errorf("bar\n got %q\nwant %q", got, want)
	}
	if got := progressBar(12_300_000, 45_600_000, 80, 2*time.Second); got != "  12.3MB/45.6MB  6.15MB/s" {
		t.Errorf("narrow: %q", got)
	}
}

// Off a terminal each printer writes one line per state change, without the states that
// only move bytes (and without failures: the command's error says it).
func TestLayerPrinterPlain(t *testing.T) {
	for _, c := range []struct {
		name   string
		newP   func(io.Writer, bool, int) *layerPrinter
		events []image.Status
		want   string
	}{
		{"pull", newPullPrinter, []image.Status{image.StatusPullingFSLayer, image.StatusDownloading, image.StatusDownloading,
			image.StatusDownloadComplete, image.StatusExtracting, image.StatusPullComplete},
			"aaaaaaaaaaaa: Pulling fs layer\naaaaaaaaaaaa: Download complete\naaaaaaaaaaaa: Pull complete\n"},
		{"push", newPushPrinter, []image.Status{image.StatusPreparing, image.StatusPushing, image.StatusPushing,
			image.StatusFailed, image.StatusPushed},
			"aaaaaaaaaaaa: Preparing\naaaaaaaaaaaa: Pushed\n"},
	} {
		var buf bytes.Buffer
		p := c.newP(&buf, false, 0)
		for i, st := range c.events {
			p.Report(image.Progress{ID: "aaaaaaaaaaaa", Status: st, Current: int64(i), Total: 10})
		}
		p.Flush()
		if buf.String() != c.want {
			t.Errorf("%s: got %q, want %q", c.name, buf.String(), c.want)
		}
	}
}

// On a terminal the block of layer lines is redrawn in place: cursor up, clear line.
func TestPullPrinterTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newPullPrinter(&buf, true, 200)
	clock := time.Unix(0, 0)
	p.now = func() time.Time { return clock }
	p.Report(image.Progress{Index: 1, ID: "bbbbbbbbbbbb", Status: image.StatusPullingFSLayer, Total: 100})
	p.Report(image.Progress{Index: 0, ID: "aaaaaaaaaaaa", Status: image.StatusAlreadyExists})
	clock = clock.Add(time.Second)
	p.Report(image.Progress{Index: 1, ID: "bbbbbbbbbbbb", Status: image.StatusDownloading, Current: 50, Total: 100})
	p.Report(image.Progress{Index: 1, ID: "bbbbbbbbbbbb", Status: image.StatusPullComplete, Total: 100})
	p.Flush()
	out := buf.String()
	frames := strings.Split(out, "\x1b[2A")
	last := frames[len(frames)-1]
	want := "\x1b[2K\raaaaaaaaaaaa: Already exists\n\x1b[2K\rbbbbbbbbbbbb: Pull complete\n"
	if last != want {
		t.Errorf("last frame %q, want %q\nall: %q", last, want, out)
	}
	if !strings.Contains(out, "bbbbbbbbbbbb: Downloading [=========================>                         ]      50B/100B") {
		t.Errorf("no progress bar in %q", out)
	}
}

// ---------------------------------------------------------------------------------------------
// the commands against an in-process Berth

type cliRegistry struct {
	host string
	c    *client.Client
}

func newCLIRegistry(t *testing.T) *cliRegistry {
	t.Helper()
	d, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(registry.New(store.New(d, store.Options{DeleteEnabled: true, Logger: quiet}),
		registry.Options{AccessLogDisabled: true, Logger: quiet}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return &cliRegistry{host: u.Host, c: client.New(client.Options{Logger: quiet})}
}

func tarGz(t *testing.T, files map[string]string) ([]byte, digest.Digest) {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg,
			Uid: os.Getuid(), Gid: os.Getgid(), ModTime: time.Unix(1700000000, 0)})
		tw.Write([]byte(body))
	}
	tw.Close()
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(tb.Bytes())
	zw.Close()
	return zb.Bytes(), digest.FromBytes(tb.Bytes())
}

// push builds and pushes an image of one layer per map; it returns the manifest digest and
// the image ID.
func (r *cliRegistry) push(t *testing.T, repoTag string, created time.Time, layers ...map[string]string) (digest.Digest, digest.Digest) {
	t.Helper()
	ctx := context.Background()
	ref, err := client.ParseReference(r.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest}
	m.SchemaVersion = 2
	cfg := ocispec.Image{Created: &created, Platform: image.DefaultPlatform(), RootFS: ocispec.RootFS{Type: "layers"},
		Config: ocispec.ImageConfig{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}}}
	for _, files := range layers {
		z, diffID := tarGz(t, files)
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(z), Size: int64(len(z))}
		if err := r.c.PushBlob(ctx, ref.Repo(), desc, bytes.NewReader(z)); err != nil {
			t.Fatal(err)
		}
		m.Layers = append(m.Layers, desc)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
	}
	cb, _ := json.Marshal(cfg)
	m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	if err := r.c.PushBlob(ctx, ref.Repo(), m.Config, bytes.NewReader(cb)); err != nil {
		t.Fatal(err)
	}
	mb, _ := json.Marshal(m)
	desc, err := r.c.PutManifest(ctx, ref, ocispec.MediaTypeImageManifest, mb)
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest, m.Config.Digest
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := execute(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	t.Logf("$ pull-run %s → %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return result{code, out.String(), errb.String()}
}

func TestCLIPullImagesRmi(t *testing.T) {
	reg := newCLIRegistry(t)
	root := t.TempDir()
	created := time.Now().Add(-2 * time.Hour)
	mdig, id := reg.push(t, "team/app:v1", created, map[string]string{"base": strings.Repeat("b", 4000)}, map[string]string{"app": "hello"})
	ref := reg.host + "/team/app:v1"

	r := runCLI(t, "", "--root", root, "pull", ref)
	if r.code != 0 {
		t.Fatalf("pull failed: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if lines[0] != "v1: Pulling from team/app" {
		t.Errorf("first line %q", lines[0])
	}
	for _, want := range []string{": Pulling fs layer", ": Verifying Checksum", ": Download complete", ": Pull complete"} {
		if strings.Count(r.stdout, want) != 2 {
			t.Errorf("want 2 lines %q in\n%s", want, r.stdout)
		}
	}
	tail := lines[len(lines)-3:]
	wantTail := []string{"Digest: " + mdig.String(), "Status: Downloaded newer image for " + ref, ref}
	if strings.Join(tail, "\n") != strings.Join(wantTail, "\n") {
		t.Errorf("tail %q, want %q", tail, wantTail)
	}
	if strings.Contains(r.stdout, "\x1b[") {
		t.Error("escape sequences when not a terminal")
	}

	r = runCLI(t, "", "--root", root, "pull", ref)
	if r.code != 0 || !strings.Contains(r.stdout, ": Already exists") || !strings.Contains(r.stdout, "Status: Image is up to date for "+ref) {
		t.Errorf("re-pull: %+v", r)
	}
	r = runCLI(t, "", "--root", root, "pull", "-q", ref)
	if r.code != 0 || r.stdout != ref+"\n" {
		t.Errorf("pull -q: %+v", r)
	}
	// No tag: Docker's "Using default tag".
	reg.push(t, "team/app:latest", created, map[string]string{"base": strings.Repeat("b", 4000)}, map[string]string{"app": "hello"})
	r = runCLI(t, "", "--root", root, "image", "pull", reg.host+"/team/app")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Using default tag: latest\nlatest: Pulling from team/app\n") {
		t.Errorf("pull without tag: %+v", r)
	}

	r = runCLI(t, "", "--root", root, "images")
	table := regexp.MustCompile(`^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\n` +
		regexp.QuoteMeta(reg.host+"/team/app") + `\s+latest\s+` + id.Encoded()[:12] + `\s+2 hours ago\s+4kB\n` +
		regexp.QuoteMeta(reg.host+"/team/app") + `\s+v1\s+` + id.Encoded()[:12] + `\s+2 hours ago\s+4kB\n$`)
	if r.code != 0 || !table.MatchString(r.stdout) {
		t.Errorf("images:\n%s", r.stdout)
	}
	r = runCLI(t, "", "--root", root, "images", "-q")
	if r.stdout != id.Encoded()[:12]+"\n"+id.Encoded()[:12]+"\n" {
		t.Errorf("images -q: %q", r.stdout)
	}
	r = runCLI(t, "", "--root", root, "images", "--digests", reg.host+"/team/app:v1")
	if !strings.Contains(r.stdout, "DIGEST") || !strings.Contains(r.stdout, mdig.String()) || strings.Contains(r.stdout, "latest") {
		t.Errorf("images --digests NAME:TAG:\n%s", r.stdout)
	}
	r = runCLI(t, "", "--root", root, "images", "--format", "json")
	var row map[string]string
	if err := json.Unmarshal([]byte(strings.Split(r.stdout, "\n")[0]), &row); err != nil || row["ID"] != id.Encoded()[:12] ||
		row["Size"] != "4kB" || row["Repository"] != reg.host+"/team/app" || row["CreatedSince"] != "2 hours ago" {
		t.Errorf("images --format json: %q (%v)", r.stdout, err)
	}
	r = runCLI(t, "", "--root", root, "images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}")
	if r.stdout != reg.host+"/team/app:latest 4kB\n"+reg.host+"/team/app:v1 4kB\n" {
		t.Errorf("images --format TEMPLATE: %q", r.stdout)
	}
	r = runCLI(t, "", "--root", root, "images", "--format", "table {{.ID}}\t{{.Tag}}")
	if !regexp.MustCompile(`^IMAGE ID\s+TAG\n`).MatchString(r.stdout) {
		t.Errorf("images --format table: %q", r.stdout)
	}

	r = runCLI(t, "", "--root", root, "image", "inspect", "-f", "{{.Id}} {{.Os}} {{.Size}} {{index .Config.Cmd 0}} {{len .RootFS.Layers}}", ref)
	if r.code != 0 || r.stdout != id.String()+" linux 4005 sh 2\n" {
		t.Errorf("inspect -f: %+v", r)
	}
	r = runCLI(t, "", "--root", root, "image", "inspect", ref, "nothere")
	var arr []map[string]any
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &arr) != nil || len(arr) != 1 || !strings.Contains(r.stderr, "Error: No such image: nothere:latest") {
		t.Errorf("inspect with a missing image: %+v", r)
	}

	r = runCLI(t, "", "--root", root, "rmi", "nothere")
	if r.code != 1 || r.stderr != "Error: No such image: nothere:latest\n" {
		t.Errorf("rmi nothere: %+v", r)
	}
	r = runCLI(t, "", "--root", root, "rmi", ref)
	if r.code != 0 || r.stdout != "Untagged: "+ref+"\n" {
		t.Errorf("rmi v1: %+v", r)
	}
	r = runCLI(t, "", "--root", root, "rmi", reg.host+"/team/app")
	if r.code != 0 || !strings.Contains(r.stdout, "Untagged: "+reg.host+"/team/app:latest\n") ||
		!strings.Contains(r.stdout, "Deleted: "+id.String()+"\n") || strings.Count(r.stdout, "Deleted: ") != 3 {
		t.Errorf("rmi latest: %+v", r)
	}
	snaps, _ := os.ReadDir(filepath.Join(root, "snapshots", "meta"))
	if len(snaps) != 0 {
		t.Errorf("snapshots left: %v", snaps)
	}
	r = runCLI(t, "", "--root", root, "images", "-q")
	if r.stdout != "" {
		t.Errorf("images after rmi: %q", r.stdout)
	}
}

func TestCLIPruneAndErrors(t *testing.T) {
	reg := newCLIRegistry(t)
	root := t.TempDir()
	_, oldID := reg.push(t, "r/app:latest", time.Now(), map[string]string{"v": "1"})
	if r := runCLI(t, "", "--root", root, "pull", "-q", reg.host+"/r/app"); r.code != 0 {
		t.Fatal(r)
	}
	reg.push(t, "r/app:latest", time.Now(), map[string]string{"v": "2"})
	if r := runCLI(t, "", "--root", root, "pull", "-q", reg.host+"/r/app"); r.code != 0 {
		t.Fatal(r)
	}
	r := runCLI(t, "", "--root", root, "images")
	if !strings.Contains(r.stdout, "<none>") {
		t.Errorf("no dangling row:\n%s", r.stdout)
	}
	// Answering no keeps everything.
	r = runCLI(t, "n\n", "--root", root, "image", "prune")
	if r.code != 0 || strings.Contains(r.stdout, "Deleted") {
		t.Errorf("prune answered n: %+v", r)
	}
	r = runCLI(t, "y\n", "--root", root, "image", "prune")
	if r.code != 0 || !strings.Contains(r.stdout, "deleted: "+oldID.String()) || !strings.Contains(r.stdout, "Total reclaimed space: 1B") {
		t.Errorf("prune: %+v", r)
	}
	r = runCLI(t, "", "--root", root, "image", "prune", "-a", "-f")
	if r.code != 0 || !strings.Contains(r.stdout, "untagged: "+reg.host+"/r/app:latest") {
		t.Errorf("prune -a: %+v", r)
	}
	if r := runCLI(t, "", "--root", root, "images", "-q"); r.stdout != "" {
		t.Errorf("images after prune -a: %q", r.stdout)
	}

	// Errors name the reference and exit 1.
	r = runCLI(t, "", "--root", root, "pull", reg.host+"/r/missing:1")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "Error: ") || !strings.Contains(r.stderr, reg.host+"/r/missing:1") {
		t.Errorf("pull missing: %+v", r)
	}
	r = runCLI(t, "", "--root", root, "pull", "--platform", "linux/s390x", reg.host+"/r/app")
	if r.code != 1 || !strings.Contains(r.stderr, "does not match the specified platform") {
		t.Errorf("pull other platform: %+v", r)
	}
	r = runCLI(t, "", "--root", root, "pull", "Bad Name")
	if r.code != 1 || !strings.Contains(r.stderr, "invalid reference format") {
		t.Errorf("pull bad name: %+v", r)
	}
	r = runCLI(t, "", "--root", root, "pull", "--bogus", "x")
	if r.code != 1 || !strings.Contains(r.stderr, "unknown flag: --bogus") {
		t.Errorf("unknown flag: %+v", r)
	}
}

func TestCLILoginLogout(t *testing.T) {
	reg := newCLIRegistry(t)
	root := t.TempDir()
	r := runCLI(t, "s3cret\n", "--root", root, "login", "-u", "alice", "--password-stdin", reg.host)
	if r.code != 0 || r.stdout != "Login Succeeded\n" {
		t.Fatalf("login: %+v", r)
	}
	st, err := os.Stat(filepath.Join(root, "auth.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("auth.json: %v %v", st, err)
	}
	u, p, err := client.NewFileStore(filepath.Join(root, "auth.json")).Get(reg.host)
	if err != nil || u != "alice" || p != "s3cret" {
		t.Errorf("saved credentials %q %q %v", u, p, err)
	}
	r = runCLI(t, "", "--root", root, "login", reg.host)
	if r.code != 1 || !strings.Contains(r.stderr, "non TTY") {
		t.Errorf("interactive login without a terminal: %+v", r)
	}
	r = runCLI(t, "", "--root", root, "logout", reg.host)
	if r.code != 0 || r.stdout != "Removing login credentials for "+reg.host+"\n" {
		t.Errorf("logout: %+v", r)
	}
	r = runCLI(t, "", "--root", root, "logout", reg.host)
	if r.code != 0 || r.stdout != "Not logged in to "+reg.host+"\n" {
		t.Errorf("second logout: %+v", r)
	}
	r = runCLI(t, "", "--root", root, "login", "-u", "a", "-p", "b", "127.0.0.1:1")
	if r.code != 1 || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("login to nothing: %+v", r)
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("root: "+filepath.Join(dir, "state")+"\ninsecure-registries: [\"10.0.0.0/8\"]\n"), 0o644)
	r := runCLI(t, "", "--config", cfg, "images", "-q")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "image")); err != nil {
		t.Errorf("config root not used: %v", err)
	}
	os.WriteFile(cfg, []byte("bogus: 1\n"), 0o644)
	if r := runCLI(t, "", "--config", cfg, "images"); r.code != 1 || !strings.Contains(r.stderr, "bogus") {
		t.Errorf("unknown key: %+v", r)
	}
}
