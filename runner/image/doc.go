// Package image is pull-run's local image store: the content store of manifests, indexes and
// configs, the image records and their references (name:tag and name@digest), Pull from any
// OCI registry (index → platform → config + layers, each layer unpacked once into a shared
// snapshot of runner/snapshot), the image commands' operations (Images, Lookup, Inspect,
// Remove, Prune, Tag), and the way back: Create (new images from layer tars: commit, import,
// load), Push, Save and Load (docker-archive and OCI image layout tars), Import.
//
// There is no daemon: every pull-run command opens the Store, whose state is rebuilt from the
// files below on each call, and several pull-run processes may use one state root at once.
// Every change happens under an exclusive flock(2) of <root>/lock and every file is written
// atomically (temp file + rename), so a killed process never leaves a half-written record.
//
// # On-disk layout
//
// The store lives at <state root>/image (pull-run's --root, default /var/lib/berth); the
// snapshots it references at <state root>/snapshots (runner/snapshot):
//
//	<root>/lock                         flock(2): shared for reads, exclusive for changes
//	<root>/repositories.json            references, Docker's shape:
//	                                    {"Repositories": {"<registry>/<repo>":
//	                                      {"<registry>/<repo>:<tag>": "sha256:<image id>",
//	                                       "<registry>/<repo>@sha256:<manifest>": "sha256:<image id>"}}}
//	<root>/imagedb/sha256/<hex>.json    one record per image, keyed by image ID (the digest of
//	                                    its config): manifest, index, config and layer
//	                                    descriptors, DiffIDs, chain IDs, unpacked sizes, and the
//	                                    repositories each compressed layer can be fetched from
//	                                    again (for push), platform, creation and pull times
//	<root>/content/sha256/<hex>         manifests, indexes and configs, verified against their
//	                                    digest before they are written, and the compressed
//	                                    layers of images made here (Create: commit, import,
//	                                    load), which push and save read; pulled layers are not
//	                                    kept (a pulled image costs its unpacked size): push and
//	                                    save fetch them again from the registry they came from
//	<root>/tmp/                         layers being compressed and archives being loaded,
//	                                    before they move into content (what a killed process
//	                                    left there is removed by rmi and prune after a day)
//	<root>/leases/<pid>-<n>.json        a pull or create in progress: the chain IDs and content it is
//	                                    about to record. The pulling process holds a flock on
//	                                    it; garbage collection spares what a live lease names
//	                                    and deletes leases whose lock is free (dead pulls)
//
// Nothing else is stored: which snapshots and which content are still needed is computed from
// the image records (and live leases) whenever an image is removed, so there are no reference
// counts to get out of step.
//
// # Pull
//
// Store.Pull resolves a tag to a digest, picks the platform from an index, fetches the config
// (verified) and then all layers in parallel, bounded by PullOptions.Concurrency. A layer
// whose snapshot (keyed by chain ID) exists is "Already exists"; otherwise it is fetched once
// per chain ID, in the process (singleflight) and across processes (the snapshot store's
// per-chain-ID lock, taken by Prepare, after which existence is checked again), and streamed:
// registry → VerifyingReader (size and digest; broken connections resume with Range) →
// Decompress → ApplyLayer into the prepared directory, with no temporary tarball. The
// compressed stream is read to its end so that its digest is checked, the DiffID is compared
// with the config's rootfs.diff_ids, and only then is the snapshot committed. Any mismatch
// discards the half-made snapshot and names the reference, the layer and what was wrong. The
// image is recorded only after every layer is committed.
package image
