//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPodman pulls from Berth with Podman an image pushed by skopeo in Docker's schema 2 (as
// docker push writes it), pushes it to another repository, builds an image on top of it
// (COPY only: Podman 4.3 cannot run containers on this host) and pushes and pulls that, and
// pushes a manifest list. Podman runs on its own storage (vfs) in a temporary directory.
func TestPodman(t *testing.T) {
	podmanBin := need(t, "podman")
	skopeo := need(t, "skopeo")
	addr := startBerth(t, t.TempDir())
	work := t.TempDir()
	store := t.TempDir()
	global := []string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}
	podman := func(args ...string) string {
		t.Helper()
		return runWith(t, cmdOpts{timeout: 3 * time.Minute}, podmanBin, append(slices.Clone(global), args...)...)
	}
	// The vfs driver mounts nothing: t.TempDir's removal cleans the store. (No `podman system
	// reset`: it would also remove the host's podman networks.)

	img := newOCIImage(t, "linux", "amd64", "podman",
		buildTar(t, busyboxRootfs(t)),
		buildTar(t, []tarEntry{{Name: "data", Dir: true}, {Name: "data/podman.txt", Body: []byte("for podman\n")}}))
	src := filepath.Join(work, "src")
	img.writeLayout(t, src, "v1")
	srcRef := addr + "/e2e/podman/src:v1"
	run(t, skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false", "--format", "v2s2", "oci:"+src+":v1", "docker://"+srcRef)
	srcBody, srcType, srcDigest := getManifest(t, addr, "e2e/podman/src", "v1")
	if srcType != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Fatalf("source manifest stored as %q", srcType)
	}
	srcMan := parseManifest(t, srcBody)

	// Pull by tag and by digest.
	podman("pull", "--tls-verify=false", srcRef)
	if d := strings.TrimSpace(podman("image", "inspect", "--format", "{{.Digest}}", srcRef)); d != srcDigest {
		t.Errorf("podman pulled %s as %s, registry has %s", srcRef, d, srcDigest)
	}
	podman("pull", "--tls-verify=false", addr+"/e2e/podman/src@"+srcDigest)

	// Push to another repository: Podman reuses the compressed layers and the config; it may
	// re-encode the manifest, and the registry must serve what Podman reports.
	copyRef := addr + "/e2e/podman/copy:v1"
	digestFile := filepath.Join(work, "copy.digest")
	podman("push", "--tls-verify=false", "--digestfile", digestFile, srcRef, copyRef)
	pushed := readTrim(t, digestFile)
	copyBody, _, copyDigest := getManifest(t, addr, "e2e/podman/copy", "v1")
	if copyDigest != pushed {
		t.Errorf("podman push reported %s, registry serves %s", pushed, copyDigest)
	}
	if got, want := parseManifest(t, copyBody).blobs(), srcMan.blobs(); !slices.Equal(got, want) {
		t.Errorf("podman push: pushed config+layers %v, want the pulled ones %v", got, want)
	}

	// Build on top (COPY and LABEL need no runtime), push, forget, pull back.
	ctxDir := filepath.Join(work, "ctx")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ctxDir, "built.txt"), "built by podman\n")
	writeFile(t, filepath.Join(ctxDir, "Containerfile"), "FROM "+srcRef+"\nCOPY built.txt /data/built.txt\nLABEL org.berth.e2e=podman-built\n")
	builtRef := addr + "/e2e/podman/built:v1"
	podman("build", "--pull=never", "--format", "oci", "-t", builtRef, ctxDir)
	builtDigestFile := filepath.Join(work, "built.digest")
	podman("push", "--tls-verify=false", "--digestfile", builtDigestFile, builtRef)
	builtDigest := readTrim(t, builtDigestFile)
	builtBody, builtType, regBuilt := getManifest(t, addr, "e2e/podman/built", "v1")
	if regBuilt != builtDigest {
		t.Errorf("podman push reported %s, registry serves %s", builtDigest, regBuilt)
	}
	if builtType != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("built image stored as %q, want OCI", builtType)
	}
	bm := parseManifest(t, builtBody)
	if len(bm.Layers) != len(srcMan.Layers)+1 {
		t.Errorf("built image has %d layers, want %d", len(bm.Layers), len(srcMan.Layers)+1)
	}
	podman("rmi", "--force", builtRef, srcRef, copyRef, addr+"/e2e/podman/src@"+srcDigest)
	podman("pull", "--tls-verify=false", builtRef)
	if d := strings.TrimSpace(podman("image", "inspect", "--format", "{{.Digest}}", builtRef)); d != builtDigest {
		t.Errorf("podman pulled %s as %s, pushed %s", builtRef, d, builtDigest)
	}
	out := podman("image", "inspect", "--format", `{{index .Labels "org.berth.e2e"}}`, builtRef)
	if strings.TrimSpace(out) != "podman-built" {
		t.Errorf("label of the pulled built image: %q", out)
	}

	// A manifest list made by Podman from the two images in the registry.
	list := "berth-e2e-list-" + uniq()
	podman("manifest", "create", list)
	podman("manifest", "add", "--tls-verify=false", list, "docker://"+srcRef)
	podman("manifest", "add", "--tls-verify=false", "--arch", "arm64", list, "docker://"+builtRef)
	listRef := addr + "/e2e/podman/list:v1"
	listDigestFile := filepath.Join(work, "list.digest")
	podman("manifest", "push", "--tls-verify=false", "--all", "--digestfile", listDigestFile, list, "docker://"+listRef)
	listBody, _, listDigest := getManifest(t, addr, "e2e/podman/list", "v1")
	if want := readTrim(t, listDigestFile); listDigest != want {
		t.Errorf("podman manifest push reported %s, registry serves %s", want, listDigest)
	}
	lm := parseManifest(t, listBody)
	if len(lm.Manifests) != 2 {
		t.Fatalf("pushed manifest list has %d entries, want 2:\n%s", len(lm.Manifests), listBody)
	}
	for _, m := range lm.Manifests {
		getManifest(t, addr, "e2e/podman/list", m.Digest)
	}
}

func readTrim(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
