// Package volume implements pull-run's volumes with Docker's semantics: named and
// anonymous volumes of the "local" driver stored under the state root
// (<root>/volumes/<name>/_data, with a volume.json of metadata and references), the
// parsing of -v, --mount and --volumes-from with Docker's rules and messages, the copy-up
// of image content into a new volume, and the container hook that drops a removed
// container's references and removes its anonymous volumes (rm -v, --rm).
//
// A volume is "in use" while a container that exists references it: references are
// recorded when a container is created (first as a pending reference of the creating
// process, then under the container's ID) and dropped by the Remove hook; references to
// containers whose directory is gone (a crash between the two) are dropped as stale.
// Every change of the store holds an exclusive flock of <root>/volumes/.lock.
//
// Volume names are validated ([a-zA-Z0-9][a-zA-Z0-9_.-]+) before they touch a path; a name
// with "/" or ".." is refused. runner/container does not import this package: the runtime
// only sees bind mounts of the volumes' _data directories in the spec, and resolves their
// destinations inside the rootfs.
package volume
