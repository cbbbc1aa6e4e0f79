//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCrane pushes two single-platform images and a multi-platform index with crane, copies,
// tags, lists, validates and deletes them, and stores a hand-written index that must come
// back byte for byte.
func TestCrane(t *testing.T) {
	crane := need(t, "crane")
	addr := startBerth(t, t.TempDir())
	work := t.TempDir()
	cr := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(run(t, crane, append(args, "--insecure")...))
	}
	repo := addr + "/e2e/crane"

	// Two platform images, each a busybox layer plus a layer of its own.
	bbTar := filepath.Join(work, "busybox.tar")
	if err := os.WriteFile(bbTar, buildTar(t, busyboxRootfs(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	platforms := []string{"linux/amd64", "linux/arm64"}
	var children []string
	for _, p := range platforms {
		arch := strings.TrimPrefix(p, "linux/")
		own := filepath.Join(work, arch+".tar")
		if err := os.WriteFile(own, buildTar(t, []tarEntry{{Name: "etc", Dir: true},
			{Name: "etc/arch", Body: []byte(arch + "\n")}}), 0o644); err != nil {
			t.Fatal(err)
		}
		ref := repo + "/" + arch + ":v1"
		cr("append", "--oci-empty-base", "-f", bbTar, "-f", own, "-t", ref)
		cr("mutate", "--set-platform", p, "-t", ref, ref)
		d := cr("digest", ref)
		body := run(t, crane, "manifest", "--insecure", ref)
		if digestOf([]byte(body)) != d {
			t.Fatalf("crane digest %s but crane manifest digests to %s", d, digestOf([]byte(body)))
		}
		if _, _, hd := getManifest(t, addr, "e2e/crane/"+arch, "v1"); hd != d {
			t.Fatalf("HTTP GET e2e/crane/%s:v1 is %s, crane digest %s", arch, hd, d)
		}
		children = append(children, ref)
	}

	// The index: children are pushed into the index's repository by digest.
	idx := repo + "/multi:v1"
	cr("index", "append", "-m", children[0], "-m", children[1], "-t", idx)
	idxBody := []byte(run(t, crane, "manifest", "--insecure", idx))
	idxDigest := cr("digest", idx)
	if digestOf(idxBody) != idxDigest {
		t.Fatalf("index: crane digest %s, body %s", idxDigest, digestOf(idxBody))
	}
	im := parseManifest(t, idxBody)
	if im.MediaType != "application/vnd.oci.image.index.v1+json" || len(im.Manifests) != 2 {
		t.Fatalf("index manifest:\n%s", idxBody)
	}
	var gotPlatforms []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			t.Fatalf("index entry %s has no platform", m.Digest)
		}
		gotPlatforms = append(gotPlatforms, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	if !slices.Equal(gotPlatforms, platforms) {
		t.Errorf("index platforms %v, want %v", gotPlatforms, platforms)
	}
	cr("validate", "--remote", idx)
	// One platform resolved through the index.
	armDigest := cr("digest", "--platform", "linux/arm64", idx)
	if armDigest != im.Manifests[1].Digest {
		t.Errorf("crane digest --platform linux/arm64: %s, index says %s", armDigest, im.Manifests[1].Digest)
	}
	if cfg := run(t, crane, "config", "--insecure", "--platform", "linux/arm64", idx); !strings.Contains(cfg, `"architecture":"arm64"`) {
		t.Errorf("arm64 config: %s", cfg)
	}

	// crane copy: the whole index with its children, to another repository.
	cp := repo + "/copy:v1"
	cr("copy", idx, cp)
	if d := cr("digest", cp); d != idxDigest {
		t.Errorf("crane copy: %s, want %s", d, idxDigest)
	}
	if b := run(t, crane, "manifest", "--insecure", cp); b != string(idxBody) {
		t.Errorf("copied index differs:\n%s\nwant\n%s", b, idxBody)
	}
	cr("validate", "--remote", cp)
	cr("tag", cp, "v2")
	cr("tag", cp, "latest")

	// Export one platform's file system through the copy.
	pulled := filepath.Join(work, "pulled")
	cr("pull", "--format", "oci", "--platform", "linux/arm64", cp, pulled)
	if d, _ := layoutManifest(t, pulled, ""); d != armDigest {
		t.Errorf("crane pull --platform linux/arm64: manifest %s, want %s", d, armDigest)
	}
	fsTar := run(t, crane, "export", "--insecure", "--platform", "linux/arm64", cp, "-")
	if !strings.Contains(fsTar, "arm64\n") || !strings.Contains(fsTar, "bin/busybox") {
		t.Errorf("crane export of linux/arm64 lacks etc/arch or bin/busybox (%d bytes)", len(fsTar))
	}

	// A hand-written index (odd spacing, key order, an annotation) is stored as sent.
	hand := []byte(fmt.Sprintf("{\n   \"schemaVersion\" :2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\n"+
		"\t\"manifests\":[{\"size\":%d,\"digest\":%q,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}}],\n"+
		"  \"annotations\":{\"org.berth.e2e\":\"byte-identical\"}   }\n", manifestSize(t, crane, repo+"/multi", armDigest), armDigest))
	putURL := fmt.Sprintf("http://%s/v2/e2e/crane/multi/manifests/hand", addr)
	resp, body := httpDo(t, http.MethodPut, putURL, map[string]string{"Content-Type": "application/vnd.oci.image.index.v1+json"}, hand)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %s: %s", putURL, resp.Status, body)
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != digestOf(hand) {
		t.Errorf("PUT %s: Docker-Content-Digest %q, want %s", putURL, h, digestOf(hand))
	}
	if b := run(t, crane, "manifest", "--insecure", repo+"/multi:hand"); !bytes.Equal([]byte(b), hand) {
		t.Errorf("hand-written index not returned byte for byte:\n%q\nwant\n%q", b, hand)
	}
	if d := cr("digest", repo+"/multi:hand"); d != digestOf(hand) {
		t.Errorf("crane digest of the hand-written index: %s, want %s", d, digestOf(hand))
	}

	// Listing.
	cat := strings.Fields(cr("catalog", addr))
	want := []string{"e2e/crane/amd64", "e2e/crane/arm64", "e2e/crane/copy", "e2e/crane/multi"}
	if !slices.Equal(cat, want) {
		t.Errorf("crane catalog: %v, want %v", cat, want)
	}
	if tags := strings.Fields(cr("ls", repo+"/copy")); !slices.Equal(sorted(tags), []string{"latest", "v1", "v2"}) {
		t.Errorf("crane ls e2e/crane/copy: %v", tags)
	}
	if tags := strings.Fields(cr("ls", repo+"/multi")); !slices.Equal(sorted(tags), []string{"hand", "v1"}) {
		t.Errorf("crane ls e2e/crane/multi: %v", tags)
	}

	// Delete the copied index by digest: all its tags go with it; the original stays.
	cr("delete", repo+"/copy@"+idxDigest)
	if _, stderr, err := tryRun(t, cmdOpts{}, crane, "manifest", "--insecure", cp); err == nil {
		t.Errorf("%s still readable after crane delete", cp)
	} else if !strings.Contains(stderr, "MANIFEST_UNKNOWN") && !strings.Contains(stderr, "NAME_UNKNOWN") {
		t.Errorf("crane manifest after delete: want MANIFEST_UNKNOWN, got: %s", stderr)
	}
	if d := cr("digest", idx); d != idxDigest {
		t.Errorf("%s after deleting its copy: %s", idx, d)
	}
	cr("validate", "--remote", idx)
}

// manifestSize is the size of the manifest dgst in repository repo.
func manifestSize(t *testing.T, crane, repo, dgst string) int {
	t.Helper()
	return len(run(t, crane, "manifest", "--insecure", repo+"@"+dgst))
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
