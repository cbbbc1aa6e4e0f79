//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// TestS3DistributionCompat: a bucket written by distribution 2.8 (Debian's docker-registry
// with its s3-aws driver) is served unchanged by Berth, and a bucket written by Berth is served
// by distribution 2.8: same catalog, tags and manifests (byte for byte), every blob, deletes
// kept, and the reader can write into it (the checks of TestMigrationFromDistribution). Besides
// seedRegistry's content, an image with a 12 MiB layer takes the multipart paths of both
// drivers (part size 5 MiB).
func TestS3DistributionCompat(t *testing.T) {
	need(t, dockerRegistryBin)
	m := startMinio(t)

	t.Run("distribution-to-berth", func(t *testing.T) {
		target := m.target(m.NewBucket(t, "from-distribution"))
		src := startDockerRegistryS3(t, target)
		seeded := seedRegistry(t, src.Addr)
		seeded.refs = append(seeded.refs, seedBigImage(t, src.Addr))
		before := snapshotRegistry(t, src.Addr)
		src.Stop(t)
		dst := startBerthS3(t, target)
		checkMigrated(t, src.Name, dst, before, seeded)
	})

	t.Run("berth-to-distribution", func(t *testing.T) {
		target := m.target(m.NewBucket(t, "from-berth"))
		target.Root = "/registry/root"
		src := startBerthS3(t, target)
		seeded := seedRegistry(t, src.Addr)
		seeded.refs = append(seeded.refs, seedBigImage(t, src.Addr))
		before := snapshotRegistry(t, src.Addr)
		src.Stop(t)
		dst := startDockerRegistryS3(t, target)
		checkMigrated(t, src.Name, dst, before, seeded)
	})
}

// seedBigImage pushes e2e/mig/big:v1 with crane: a busybox layer and 12 MiB of random data.
func seedBigImage(t *testing.T, addr string) string {
	t.Helper()
	work := t.TempDir()
	bb := filepath.Join(work, "busybox.tar")
	if err := os.WriteFile(bb, buildTar(t, busyboxRootfs(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(work, "big.tar")
	if err := os.WriteFile(big, buildTar(t, []tarEntry{{Name: "data", Dir: true},
		{Name: "data/random", Body: randomBytes(41, 12<<20)}}), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, need(t, "crane"), "append", "--insecure", "-f", bb, "-f", big, "-t", addr+"/e2e/mig/big:v1")
	return "e2e/mig/big:v1"
}
