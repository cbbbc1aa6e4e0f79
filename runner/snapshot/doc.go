// Package snapshot unpacks image layers into shared snapshot directories and assembles them
// into overlayfs root filesystems.
//
// # Unpacking
//
// Decompress turns a layer blob (gzip, zstd or plain tar; OCI and Docker media types) into
// its tar stream; ApplyLayer unpacks that stream into an empty directory while computing the
// layer's DiffID (sha256 of the uncompressed stream), with no temporary tarball and no second
// pass. Whiteouts are converted to overlayfs form on the way: ".wh.<name>" becomes a 0/0
// character device, ".wh..wh..opq" the xattr trusted.overlay.opaque=y.
//
// The layer is untrusted input. Every name is resolved beneath the snapshot directory with
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV) and
// entries are made with the *at syscalls on directory descriptors (O_NOFOLLOW / no-follow
// flags on the last component), never with joined path strings; where openat2 is missing, a
// component-by-component walk with openat(O_NOFOLLOW|O_DIRECTORY) gives the same guarantee.
// Paths climbing out with "..", writes through symlinks, hardlinks to outside the layer,
// malformed whiteouts, disallowed devices, unknown entry types and pathological names are
// refused with an error wrapping ErrUnsafeEntry that names the entry; nothing is ever written
// outside the directory (the caller discards the half-made snapshot).
//
// # Performance
//
// Decompression runs in its own goroutine ahead of the unpacker (1 MiB chunks), so gzip
// inflation, hashing and file creation use two cores; file contents are written with 1 MiB
// writes; owner, mode, xattrs and times are set on the open descriptor (fchown, fchmod,
// fsetxattr, futimens), chown is skipped when the kernel already gave the right owner, and
// directories get their times once, after their contents. There is no per-file fsync:
// StoreOptions.Sync asks for one syncfs(2) per snapshot at commit instead.
//
// # Store and mounts
//
// Store keeps committed snapshots keyed by chain ID (ChainID) under short directory names
// (<root>/<small integer>) so that lowerdir lists stay short; Prepare/commit make a
// snapshot visible atomically, a flock serialises processes. MountOverlay mounts a stack of
// them with the new mount API, one "lowerdir+" per layer, so the number of layers is not
// limited by mount(2)'s one-page option string (MountOverlayClassic is the fallback and never
// lets the kernel silently truncate that string).
package snapshot
