//go:build e2e

package e2e

// TestPush*, TestSaveLoad* and TestImport* drive pull-run's way back to the registry: push
// of pulled images to another Berth registry (re-fetching the layers, digests kept) and to
// another repository of the same one (cross-repository mounts), `docker pull` and `docker
// run` of what was pushed, save → docker load and docker save → load round trips keeping
// the image ID, and import of a busybox root filesystem.

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var pushDigestLineRE = regexp.MustCompile(`(?m)^(\S+): digest: (sha256:[0-9a-f]{64}) size: (\d+)$`)

func TestPushToAnotherRegistryAndDockerPull(t *testing.T) {
	docker := needDocker(t)
	h := newCLIHost(t)
	h.must("pull", "-q", h.image)
	want := h.field(h.image, "{{index .RepoDigests 0}}")
	_, manifestDigest, _ := strings.Cut(want, "@")

	// Another registry: the layers are fetched again from the first one, so the manifest
	// is the same one.
	other := startBerth(t, t.TempDir())
	target := other + "/copied/busybox:v1"
	h.must("tag", h.image, target)
	out := h.must("push", target)
	if !strings.Contains(out, "The push refers to repository ["+other+"/copied/busybox]\n") || !strings.Contains(out, ": Pushed\n") {
		t.Errorf("push output:\n%s", out)
	}
	m := pushDigestLineRE.FindStringSubmatch(out)
	if m == nil || m[1] != "v1" || m[2] != manifestDigest {
		t.Fatalf("push printed %q, want v1: digest: %s", m, manifestDigest)
	}
	if _, _, d := getManifest(t, other, "copied/busybox", "v1"); d != manifestDigest {
		t.Errorf("registry serves %s, want %s", d, manifestDigest)
	}
	// Pushing again uploads nothing.
	out = h.must("push", target)
	if !strings.Contains(out, ": Layer already exists\n") || strings.Contains(out, "Pushed") {
		t.Errorf("second push output:\n%s", out)
	}
	// Another repository of the same registry: mounted, not uploaded.
	mounted := h.addr + "/mounted/bb:v2"
	h.must("tag", h.image, mounted)
	out = h.must("push", mounted)
	if !strings.Contains(out, ": Mounted from busybox\n") {
		t.Errorf("push to the same registry did not mount:\n%s", out)
	}
	// -q prints the reference only.
	if out := h.must("push", "-q", target); strings.TrimSpace(out) != target {
		t.Errorf("push -q printed %q", out)
	}

	// Docker pulls and runs what pull-run pushed.
	t.Cleanup(func() { _, _, _ = tryRun(t, cmdOpts{}, docker, "rmi", "-f", target) })
	runWith(t, cmdOpts{timeout: 3 * time.Minute}, docker, "pull", target)
	if got := run(t, docker, "run", "--rm", "--network", "none", target, "echo", "pushed by pull-run"); strings.TrimSpace(got) != "pushed by pull-run" {
		t.Errorf("docker run: %q", got)
	}
	if id := strings.TrimSpace(run(t, docker, "image", "inspect", "--format", "{{.Id}}", target)); id != h.imageID {
		t.Errorf("docker's image ID %s, want %s", id, h.imageID)
	}
}

func TestPushAllTagsAndErrors(t *testing.T) {
	h := newCLIHost(t)
	h.must("pull", "-q", h.image)
	other := startBerth(t, t.TempDir())
	for _, tag := range []string{"a", "b", "c"} {
		h.must("tag", h.image, other+"/all/tags:"+tag)
	}
	out := h.must("push", "--all-tags", other+"/all/tags")
	var tags []string
	for _, m := range pushDigestLineRE.FindAllStringSubmatch(out, -1) {
		tags = append(tags, m[1])
	}
	if !slices.Equal(tags, []string{"a", "b", "c"}) {
		t.Errorf("pushed tags %v:\n%s", tags, out)
	}
	if got := listTags(t, other, "all/tags"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("registry tags %v", got)
	}
	h.expect(1, []string{"push", "--all-tags", other + "/all/tags:a"}, "tag can't be used with --all-tags/-a")
	h.expect(1, []string{"push", other + "/missing/image:v1"}, "An image does not exist locally with the tag: "+other+"/missing/image:v1")
	// A registry that is not there: an error, and no reference changed.
	before := h.must("images", "--digests", "--no-trunc")
	h.must("tag", h.image, "127.0.0.1:1/nowhere:v1")
	h.expect(1, []string{"push", "127.0.0.1:1/nowhere:v1"}, "127.0.0.1:1")
	h.must("rmi", "127.0.0.1:1/nowhere:v1")
	if after := h.must("images", "--digests", "--no-trunc"); after != before {
		t.Errorf("images changed after a failed push:\n%s\n---\n%s", before, after)
	}
}

func TestSaveLoadIntoDocker(t *testing.T) {
	docker := needDocker(t)
	h := newCLIHost(t)
	h.must("pull", "-q", h.image)
	ref := h.addr + "/saved/busybox:v1"
	h.must("tag", h.image, ref)
	archive := filepath.Join(t.TempDir(), "saved.tar")
	h.must("save", "-o", archive, ref)
	t.Cleanup(func() { _, _, _ = tryRun(t, cmdOpts{}, docker, "rmi", "-f", ref) })
	out := runWith(t, cmdOpts{timeout: 3 * time.Minute}, docker, "load", "-i", archive)
	if !strings.Contains(out, "Loaded image: "+ref) {
		t.Errorf("docker load:\n%s", out)
	}
	if id := strings.TrimSpace(run(t, docker, "image", "inspect", "--format", "{{.Id}}", ref)); id != h.imageID {
		t.Errorf("docker load: image ID %s, want %s", id, h.imageID)
	}
	if got := run(t, docker, "run", "--rm", "--network", "none", ref, "cat", "/etc/motd"); got != "from the image\n" {
		t.Errorf("docker run: %q", got)
	}
	// The same archive is an OCI image layout: skopeo reads the image from it with its
	// manifest byte for byte (the digest pull-run pulled).
	skopeo := need(t, "skopeo")
	_, pulled, _ := strings.Cut(h.field(h.image, "{{index .RepoDigests 0}}"), "@")
	raw := run(t, skopeo, "inspect", "--raw", "oci-archive:"+archive)
	if got := digestOf([]byte(raw)); got != pulled {
		t.Errorf("skopeo reads manifest %s from the OCI layout, want %s:\n%s", got, pulled, raw)
	}
	if cfg := run(t, skopeo, "inspect", "--config", "--raw", "oci-archive:"+archive); digestOf([]byte(cfg)) != h.imageID {
		t.Errorf("skopeo reads config %s, want %s", digestOf([]byte(cfg)), h.imageID)
	}

	// And back: the archive loads into another pull-run state root with the same digests.
	h2 := &cliHost{t: t, bin: h.bin, root: filepath.Join(t.TempDir(), "root"), runroot: filepath.Join(t.TempDir(), "run")}
	out = h2.must("load", "-i", archive)
	if out != "Loaded image: "+ref+"\n" {
		t.Errorf("load printed %q", out)
	}
	if id := h2.field(ref, "{{.Id}}"); id != h.imageID {
		t.Errorf("pull-run load: ID %s, want %s", id, h.imageID)
	}
}

func TestSaveLoadFromDocker(t *testing.T) {
	docker := needDocker(t)
	h := newCLIHost(t)
	u := uniq()
	name := "berth-e2e-saved:" + u
	work := t.TempDir()
	rootfs := filepath.Join(work, "rootfs.tar")
	if err := os.WriteFile(rootfs, buildTar(t, busyboxRootfs(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _, _ = tryRun(t, cmdOpts{}, docker, "rmi", "-f", name) })
	run(t, docker, "import", "--change", `CMD ["/bin/busybox","echo","from docker"]`, rootfs, name)
	dockerID := strings.TrimSpace(run(t, docker, "image", "inspect", "--format", "{{.Id}}", name))
	archive := filepath.Join(work, "docker.tar")
	runWith(t, cmdOpts{timeout: 3 * time.Minute}, docker, "save", "-o", archive, name)

	out := h.must("load", "-i", archive)
	if out != "Loaded image: "+name+"\n" {
		t.Errorf("load printed %q", out)
	}
	if id := h.field(name, "{{.Id}}"); id != dockerID {
		t.Errorf("pull-run load: ID %s, docker's %s", id, dockerID)
	}
	if got := h.must("run", "--rm", "--network", "none", name); got != "from docker\n" {
		t.Errorf("run: %q", got)
	}
	// Loading again changes nothing; stdin works too.
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, errs, code := h.runCtx(t.Context(), f, "load")
	if code != 0 || out != "Loaded image: "+name+"\n" {
		t.Errorf("load from stdin: %d %q %s", code, out, errs)
	}
	// A tampered archive is refused and leaves nothing.
	bad := filepath.Join(work, "bad.tar")
	if err := os.WriteFile(bad, tarWithEscape(t), 0o644); err != nil {
		t.Fatal(err)
	}
	h3 := &cliHost{t: t, bin: h.bin, root: filepath.Join(t.TempDir(), "root"), runroot: filepath.Join(t.TempDir(), "run")}
	h3.expect(1, []string{"load", "-i", bad}, "unsafe entry name")
	if out := h3.must("images", "-q"); out != "" {
		t.Errorf("images after a refused load: %q", out)
	}
}

// tarWithEscape is an archive with a "../" entry.
func tarWithEscape(t *testing.T) []byte {
	return buildTar(t, []tarEntry{{Name: "manifest.json", Body: []byte("[]")}, {Name: "../../etc/evil", Body: []byte("x")}})
}

func TestImportBusyboxRootfs(t *testing.T) {
	h := newCLIHost(t)
	rootfs := filepath.Join(t.TempDir(), "rootfs.tar.gz")
	if err := os.WriteFile(rootfs, gzipBytes(t, buildTar(t, busyboxRootfs(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	out := h.must("import", "-c", `CMD ["/bin/busybox", "echo", "imported"]`, "-m", "from a tarball", rootfs, "imported:v1")
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`).MatchString(out) {
		t.Errorf("import printed %q", out)
	}
	if got := h.must("run", "--rm", "--network", "none", "imported:v1"); got != "imported\n" {
		t.Errorf("run: %q", got)
	}
	if id := h.field("imported:v1", "{{.Id}}"); id != strings.TrimSpace(out) {
		t.Errorf("inspect ID %s, import printed %s", id, out)
	}
}

// TestPushRefusedByRegistry pushes to a registry that refuses uploads (401, 403, 413): one
// line of error as docker push prints it, exit status 1, and nothing changed locally.
func TestPushRefusedByRegistry(t *testing.T) {
	h := newCLIHost(t)
	h.must("pull", "-q", h.image)
	for _, tc := range []struct {
		code int
		body string
		want string
	}{
		{http.StatusUnauthorized, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, "Error: unauthorized: authentication required\n"},
		{http.StatusForbidden, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`, "Error: denied: requested access to the resource is denied\n"},
		{http.StatusRequestEntityTooLarge, `<html><body>413 Request Entity Too Large</body></html>`, "Error: blob upload too large\n"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.URL.Path == "/v2/":
				w.WriteHeader(http.StatusOK)
			case r.Method == http.MethodHead:
				w.WriteHeader(http.StatusNotFound)
			default:
				if tc.code == http.StatusUnauthorized {
					w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.code)
				io.WriteString(w, tc.body)
			}
		}))
		target := strings.TrimPrefix(srv.URL, "http://") + "/refused/busybox:v1"
		h.must("tag", h.image, target)
		before := h.must("images", "--digests", "--no-trunc")
		_, errs := h.expect(1, []string{"push", target})
		if errs != tc.want {
			t.Errorf("HTTP %d: stderr %q, want %q", tc.code, errs, tc.want)
		}
		if after := h.must("images", "--digests", "--no-trunc"); after != before {
			t.Errorf("HTTP %d: images changed:\n%s\n---\n%s", tc.code, before, after)
		}
		srv.Close()
	}
}
