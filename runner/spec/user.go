package spec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Errors of the user lookup, with runc's (and so Docker's) texts.
var (
	// ErrNoPasswdEntries: a user name that the image's /etc/passwd does not have.
	ErrNoPasswdEntries = errors.New("no matching entries in passwd file")
	// ErrNoGroupEntries: a group name that the image's /etc/group does not have.
	ErrNoGroupEntries = errors.New("no matching entries in group file")
	// ErrRange: a numeric uid or gid out of range.
	ErrRange = fmt.Errorf("uids and gids must be in range %d-%d", minID, maxID)
)

const (
	minID = 0
	maxID = 1<<31 - 1

	// maxSymlinks is the most symbolic links followed resolving one path (Linux's
	// MAXSYMLINKS).
	maxSymlinks = 40
	// maxUserDBSize caps how much of /etc/passwd or /etc/group is read.
	maxUserDBSize = 16 << 20
)

// ExecUser is a resolved -u: the ids the process runs with and its home directory.
type ExecUser struct {
	UID uint32
	GID uint32
	// AdditionalGids are the supplementary groups as Docker sets them: the primary gid
	// first, then the groups of /etc/group that list the user by name (only when -u names
	// no group), then the --group-add groups.
	AdditionalGids []uint32
	// Home is the passwd entry's home directory, "/" when there is no entry.
	Home string
}

type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

type groupEntry struct {
	name    string
	gid     int
	members []string
}

// LookupUser resolves a -u value ("", "user", "uid", "user:group", "uid:gid", "user:gid",
// …) and --group-add values against the image's /etc/passwd and /etc/group, with runc's
// rules (those Docker uses): a numeric user or group needs no entry; a name without an
// entry is an error ("unable to find user x: no matching entries in passwd file"); ""
// means uid 0 with root's entry when there is one.
//
// root is the container's rootfs (nil: an image without those files). The files are
// resolved inside it as if it were "/" (see ResolvePath): the image is untrusted, so an
// /etc/passwd that is a symbolic link to /etc/shadow, to ../../etc/shadow or to
// /proc/self/fd/N reads the rootfs's own file of that name, never the host's. Files that
// are not regular files (FIFOs, devices) are refused.
func LookupUser(root *os.Root, userSpec string, groupAdd []string) (*ExecUser, error) {
	passwdData, err := readUserDB(root, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	groupData, err := readUserDB(root, "/etc/group")
	if err != nil {
		return nil, err
	}
	var passwd []passwdEntry
	if passwdData != nil {
		passwd = parsePasswd(passwdData)
	}
	var groups []groupEntry
	if groupData != nil {
		groups = parseGroup(groupData)
	}

	u := &ExecUser{Home: "/"}
	userArg, groupArg, _ := strings.Cut(userSpec, ":")
	// runc ignores anything after a second ':'.
	groupArg, _, _ = strings.Cut(groupArg, ":")
	uidArg, uidErr := strconv.Atoi(userArg)
	gidArg, gidErr := strconv.Atoi(groupArg)

	var matched *passwdEntry
	for i := range passwd {
		p := &passwd[i]
		var ok bool
		switch {
		case userArg == "":
			ok = p.uid == 0
		case uidErr == nil:
			ok = p.uid == uidArg
		default:
			ok = p.name == userArg
		}
		if ok {
			matched = p
			break
		}
	}
	var matchedName string
	switch {
	case matched != nil:
		matchedName = matched.name
		u.UID, u.GID, u.Home = uint32(matched.uid), uint32(matched.gid), matched.home
		if u.Home == "" {
			u.Home = "/"
		}
	case userArg != "":
		if uidErr != nil {
			return nil, fmt.Errorf("unable to find user %s: %w", userArg, ErrNoPasswdEntries)
		}
		if uidArg < minID || uidArg > maxID {
			return nil, ErrRange
		}
		u.UID = uint32(uidArg)
	}

	var sgids []uint32
	if groupArg != "" {
		found := false
		for _, g := range groups {
			if (gidErr == nil && g.gid == gidArg) || (gidErr != nil && g.name == groupArg) {
				u.GID, found = uint32(g.gid), true
				break
			}
		}
		if !found {
			if gidErr != nil {
				return nil, fmt.Errorf("unable to find group %s: %w", groupArg, ErrNoGroupEntries)
			}
			if gidArg < minID || gidArg > maxID {
				return nil, ErrRange
			}
			u.GID = uint32(gidArg)
		}
	} else if matchedName != "" {
		for _, g := range groups {
			for _, m := range g.members {
				if m == matchedName {
					sgids = append(sgids, uint32(g.gid))
					break
				}
			}
		}
	}

	added, err := additionalGroups(groupAdd, groups)
	if err != nil {
		return nil, err
	}
	u.AdditionalGids = dedupGids(append(append([]uint32{u.GID}, sgids...), added...))
	return u, nil
}

// additionalGroups resolves --group-add values as runc's GetAdditionalGroups does: a
// group name or gid of /etc/group, else a number.
func additionalGroups(names []string, groups []groupEntry) ([]uint32, error) {
	var out []uint32
	for _, ag := range names {
		found := false
		for _, g := range groups {
			if g.name == ag || strconv.Itoa(g.gid) == ag {
				out, found = append(out, uint32(g.gid)), true
				break
			}
		}
		if found {
			continue
		}
		gid, err := strconv.ParseInt(ag, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("Unable to find group %s: %w", ag, ErrNoGroupEntries)
		}
		if gid < minID || gid > maxID {
			return nil, ErrRange
		}
		out = append(out, uint32(gid))
	}
	return out, nil
}

func dedupGids(gids []uint32) []uint32 {
	seen := make(map[uint32]bool, len(gids))
	out := gids[:0]
	for _, g := range gids {
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out
}

// parsePasswd parses passwd(5) lines: name:password:uid:gid:gecos:home:shell. Lines
// whose uid or gid is not a number are skipped.
func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	forEachLine(data, func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || uid < minID || uid > maxID || gid < minID || gid > maxID {
			return
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	})
	return out
}

// parseGroup parses group(5) lines: name:password:gid:member,member.
func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	forEachLine(data, func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil || gid < minID || gid > maxID {
			return
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			e.members = strings.Split(f[3], ",")
		}
		out = append(out, e)
	})
	return out
}

// forEachLine calls fn with the ':'-separated fields of each non-empty line, trimmed of
// surrounding whitespace as runc does.
func forEachLine(data []byte, fn func([]string)) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), maxUserDBSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		fn(strings.Split(line, ":"))
	}
}

// readUserDB reads an /etc file of the rootfs, resolved inside it. A file that does not
// exist (or whose parent is not a directory) gives nil and no error, as runc treats it.
func readUserDB(root *os.Root, name string) ([]byte, error) {
	if root == nil {
		return nil, nil
	}
	f, err := OpenInRoot(root, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading %s of the image: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxUserDBSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s of the image: %w", name, err)
	}
	if len(data) > maxUserDBSize {
		return nil, fmt.Errorf("reading %s of the image: larger than %d bytes", name, maxUserDBSize)
	}
	return data, nil
}

// ResolvePath resolves name inside root as if root were "/" (chroot semantics, like
// Docker's FollowSymlinkInScope or filepath-securejoin): ".." stops at the root, and a
// symbolic link is followed with its target read as a path of the rootfs (an absolute
// target starts again at root). So nothing resolves outside the root, whatever the links
// say; /proc/self/… magic links of the host are never involved, since the links are read,
// not followed by the kernel. Components that do not exist are kept as given (lexically
// cleaned). The result is a clean path relative to root ("." for the root itself), with
// no symbolic links among its existing components. More than 40 links give ELOOP.
//
// The answer holds while nobody changes the rootfs concurrently; opening the result
// through the same os.Root keeps even a racing change inside the root.
func ResolvePath(root *os.Root, name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", &fs.PathError{Op: "resolve", Path: name, Err: fs.ErrInvalid}
	}
	var resolved []string
	rest := strings.Split(name, "/")
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
			continue
		}
		next := strings.Join(append(resolved, c), "/")
		fi, err := root.Lstat(next)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				// Kept as given: ".." after a missing component is lexical, as a
				// later mkdir -p would make it.
				resolved = append(resolved, c)
				continue
			}
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = append(resolved, c)
			continue
		}
		links++
		if links > maxSymlinks {
			return "", &fs.PathError{Op: "resolve", Path: name, Err: syscall.ELOOP}
		}
		target, err := root.Readlink(next)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			resolved = resolved[:0]
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	if len(resolved) == 0 {
		return ".", nil
	}
	return strings.Join(resolved, "/"), nil
}

// OpenInRoot opens the regular file name of the rootfs for reading, resolved with
// ResolvePath. Anything but a regular file (a FIFO that would block, a device node that
// would read the host's device, a directory) is refused with an error; the open itself is
// non-blocking, so a file swapped for a FIFO in a race cannot hang the caller.
func OpenInRoot(root *os.Root, name string) (*os.File, error) {
	p, err := ResolvePath(root, name)
	if err != nil {
		return nil, err
	}
	fi, err := root.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("not a regular file")}
	}
	f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("not a regular file")}
	}
	return f, nil
}
