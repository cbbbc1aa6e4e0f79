//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMigrationFromDistribution: a data directory written by distribution 2.8 (Debian's
// docker-registry) is served by Berth as it is: same catalog, tags, manifests (byte for byte)
// and blobs; deleted manifests stay deleted; Berth can write into it.
func TestMigrationFromDistribution(t *testing.T) {
	root := t.TempDir()
	src := startDockerRegistryServer(t, root)
	seeded := seedRegistry(t, src.Addr)
	before := snapshotRegistry(t, src.Addr)
	src.Stop(t)

	dst := startBerthServer(t, root)
	checkMigrated(t, "docker-registry", dst, before, seeded)
}

// TestMigrationToDistribution: a data directory written by Berth is served by distribution
// 2.8 (Debian's docker-registry) as it is.
func TestMigrationToDistribution(t *testing.T) {
	root := t.TempDir()
	src := startBerthServer(t, root)
	seeded := seedRegistry(t, src.Addr)
	before := snapshotRegistry(t, src.Addr)
	src.Stop(t)

	dst := startDockerRegistryServer(t, root)
	checkMigrated(t, src.Name, dst, before, seeded)
}

// seeded is what seedRegistry pushed.
type seeded struct {
	deleted string   // digest of a manifest deleted after the push (in e2e/mig/gone)
	refs    []string // repo:tag written
}

// seedRegistry writes varied content with crane, skopeo and plain HTTP: images sharing layers,
// several tags on one manifest, an OCI index with platform children, OCI and Docker schema 2
// manifests, and a deleted manifest.
func seedRegistry(t *testing.T, addr string) seeded {
	t.Helper()
	crane := need(t, "crane")
	skopeo := need(t, "skopeo")
	work := t.TempDir()
	cr := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(run(t, crane, append(args, "--insecure")...))
	}
	var s seeded
	layer := func(name, content string) string {
		p := filepath.Join(work, name+".tar")
		if err := os.WriteFile(p, buildTar(t, []tarEntry{{Name: "data", Dir: true},
			{Name: "data/" + name, Body: []byte(content)}}), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bb := filepath.Join(work, "busybox.tar")
	if err := os.WriteFile(bb, buildTar(t, busyboxRootfs(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	app := addr + "/e2e/mig/app"
	// app:v1 (Docker media types), app:v2 on top of v1, latest = v2, stable = v1.
	cr("append", "-f", bb, "-f", layer("one", "one\n"), "-t", app+":v1")
	cr("append", "-b", app+":v1", "-f", layer("two", "two\n"), "-t", app+":v2")
	cr("tag", app+":v2", "latest")
	cr("tag", app+":v1", "stable")
	s.refs = append(s.refs, "e2e/mig/app:v1", "e2e/mig/app:v2", "e2e/mig/app:latest", "e2e/mig/app:stable")

	// An OCI index of two platform images.
	for _, arch := range []string{"amd64", "arm64"} {
		ref := addr + "/e2e/mig/plat-" + arch + ":v1"
		cr("append", "--oci-empty-base", "-f", bb, "-f", layer(arch, arch+"\n"), "-t", ref)
		cr("mutate", "--set-platform", "linux/"+arch, "-t", ref, ref)
		s.refs = append(s.refs, "e2e/mig/plat-"+arch+":v1")
	}
	cr("index", "append", "-m", addr+"/e2e/mig/plat-amd64:v1", "-m", addr+"/e2e/mig/plat-arm64:v1", "-t", addr+"/e2e/mig/multi:v1")
	s.refs = append(s.refs, "e2e/mig/multi:v1")

	// skopeo: an OCI image from a layout, and the same converted to Docker schema 2.
	img := newOCIImage(t, "linux", "amd64", "migration", buildTar(t, busyboxRootfs(t)),
		buildTar(t, []tarEntry{{Name: "etc", Dir: true}, {Name: "etc/motd", Body: []byte("migrated\n")}}))
	layout := filepath.Join(work, "layout")
	img.writeLayout(t, layout, "v1")
	run(t, skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false", "oci:"+layout+":v1", "docker://"+addr+"/e2e/mig/skopeo:oci")
	run(t, skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false", "--format", "v2s2", "oci:"+layout+":v1", "docker://"+addr+"/e2e/mig/skopeo:docker")
	s.refs = append(s.refs, "e2e/mig/skopeo:oci", "e2e/mig/skopeo:docker")

	// A deleted manifest next to one that stays.
	gone := addr + "/e2e/mig/gone"
	cr("append", "-f", layer("stays", "stays\n"), "-t", gone+":stays")
	cr("append", "-f", layer("removed", "removed\n"), "-t", gone+":removed")
	s.deleted = cr("digest", gone+":removed")
	url := fmt.Sprintf("http://%s/v2/e2e/mig/gone/manifests/%s", addr, s.deleted)
	if resp, body := httpDo(t, http.MethodDelete, url, nil, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE %s: %s: %s", url, resp.Status, body)
	}
	s.refs = append(s.refs, "e2e/mig/gone:stays")
	return s
}

// checkMigrated compares what dst serves with the snapshot taken from the registry that wrote
// the directory, fetches every blob, then writes and deletes on dst.
func checkMigrated(t *testing.T, writer string, dst *registryServer, before registrySnapshot, s seeded) {
	t.Helper()
	crane := need(t, "crane")
	addr := dst.Addr
	after := snapshotRegistry(t, addr)
	n := 0
	for _, tags := range before.Tags {
		n += len(tags)
	}
	t.Logf("written by %s: %d repositories, %d tags, %d manifests; comparing with %s", writer, len(before.Repos), n, len(before.Bodies), dst.Name)

	if !slices.Equal(after.Repos, before.Repos) {
		t.Errorf("catalog served by %s: %v\nwritten by %s: %v", dst.Name, after.Repos, writer, before.Repos)
	}
	for _, repo := range before.Repos {
		if !slices.Equal(after.Tags[repo], before.Tags[repo]) {
			t.Errorf("%s: tags %v, %s had %v", repo, after.Tags[repo], writer, before.Tags[repo])
		}
		for tag, d := range before.Manifests[repo] {
			if got := after.Manifests[repo][tag]; got != d {
				t.Errorf("%s:%s is %s on %s, was %s on %s", repo, tag, got, dst.Name, d, writer)
			}
		}
	}
	for _, ref := range s.refs {
		repo, tag, _ := strings.Cut(ref, ":")
		if before.Manifests[repo][tag] == "" {
			t.Errorf("%s pushed to %s is not in its tag list", ref, writer)
		}
	}
	for d, body := range before.Bodies {
		if string(after.Bodies[d]) != string(body) && after.Bodies[d] != nil {
			t.Errorf("manifest %s differs byte-wise", d)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Every manifest and blob reachable from every tag, with digests checked by crane.
	for _, repo := range before.Repos {
		for _, tag := range before.Tags[repo] {
			run(t, crane, "validate", "--insecure", "--remote", addr+"/"+repo+":"+tag)
		}
		// and by digest
		for _, d := range before.Manifests[repo] {
			getManifest(t, addr, repo, d)
		}
	}
	pulled := filepath.Join(t.TempDir(), "pulled")
	run(t, crane, "pull", "--insecure", "--format", "oci", addr+"/e2e/mig/multi:v1", pulled)
	if d, _ := layoutManifest(t, pulled, ""); d != before.Manifests["e2e/mig/multi"]["v1"] {
		t.Errorf("crane pull of e2e/mig/multi:v1: %s, want %s", d, before.Manifests["e2e/mig/multi"]["v1"])
	}

	// The deleted manifest stays deleted.
	url := fmt.Sprintf("http://%s/v2/e2e/mig/gone/manifests/%s", addr, s.deleted)
	if resp, body := httpDo(t, http.MethodGet, url, map[string]string{"Accept": strings.Join(manifestMediaTypes, ", ")}, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s (deleted by %s): %s, want 404: %.300s", url, writer, resp.Status, body)
	}

	// Writing into the migrated directory: a cross-repository copy (blob mount), a new layer on
	// top of migrated ones, a new tag, and a delete.
	cr := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(run(t, crane, append(args, "--insecure")...))
	}
	cr("copy", addr+"/e2e/mig/app:v2", addr+"/e2e/mig/after:v1")
	if d := cr("digest", addr+"/e2e/mig/after:v1"); d != before.Manifests["e2e/mig/app"]["v2"] {
		t.Errorf("copy of migrated e2e/mig/app:v2: %s, want %s", d, before.Manifests["e2e/mig/app"]["v2"])
	}
	extra := filepath.Join(t.TempDir(), "extra.tar")
	if err := os.WriteFile(extra, buildTar(t, []tarEntry{{Name: "extra", Body: []byte("written after migration\n")}}), 0o644); err != nil {
		t.Fatal(err)
	}
	cr("append", "-b", addr+"/e2e/mig/app:v2", "-f", extra, "-t", addr+"/e2e/mig/after:v2")
	cr("validate", "--remote", addr+"/e2e/mig/after:v2")
	cr("tag", addr+"/e2e/mig/multi:v1", "v1-again")
	cr("delete", addr+"/e2e/mig/app@"+before.Manifests["e2e/mig/app"]["v1"])
	if got := listTags(t, addr, "e2e/mig/app"); !slices.Equal(got, []string{"latest", "v2"}) {
		t.Errorf("e2e/mig/app tags after deleting v1's manifest (tagged v1 and stable): %v, want [latest v2]", got)
	}
	if got, want := catalog(t, addr), append(slices.Clone(before.Repos), "e2e/mig/after"); !slices.Equal(got, sorted(want)) {
		t.Errorf("catalog after writes: %v, want %v", got, sorted(want))
	}
}
