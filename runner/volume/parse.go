package volume

import (
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/runner/cgroups"
	"github.com/berth-registry/berth/runner/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Mount types, as Docker names them.
const (
	TypeBind   = "bind"
	TypeVolume = "volume"
	TypeTmpfs  = "tmpfs"
)

// Mount is one parsed -v or --mount value.
type Mount struct {
	// Type is TypeBind, TypeVolume or TypeTmpfs.
	Type string
	// Source is the host path of a bind, the name of a volume ("" anonymous).
	Source string
	// Target is the clean absolute destination in the container.
	Target string
	// ReadOnly mounts it read-only.
	ReadOnly bool
	// Mode is -v's mode field as given (inspect's Mode).
	Mode string
	// Propagation is a bind's propagation ("" is rprivate).
	Propagation string
	// NoCopy skips the copy-up of the image's content into a new volume.
	NoCopy bool
	// Labels are --mount's volume-label values, given to a volume it creates.
	Labels map[string]string
	// TmpfsSize (bytes, 0 unlimited) and TmpfsMode (0 the default) of a tmpfs.
	TmpfsSize int64
	TmpfsMode os.FileMode
	// Bind is the -v value when the mount came from -v with a source (HostConfig.Binds).
	Bind string
}

var rwModes = map[string]bool{"rw": true, "ro": true}
var labelModes = map[string]bool{"z": true, "Z": true}
var propagationModes = map[string]bool{
	"private": true, "rprivate": true, "shared": true, "rshared": true, "slave": true, "rslave": true,
}
var consistencyModes = map[string]bool{"consistent": true, "cached": true, "delegated": true, "default": true}

// validMode is Docker's linux mode check: a comma list with at most one of each kind.
func validMode(mode string) bool {
	if mode == "" {
		return true
	}
	var rw, label, prop, cp, cons int
	for _, o := range strings.Split(mode, ",") {
		switch {
		case rwModes[o]:
			rw++
		case labelModes[o]:
			label++
		case propagationModes[o]:
			prop++
		case o == "nocopy":
			cp++
		case consistencyModes[o]:
			cons++
		default:
			return false
		}
	}
	return rw <= 1 && label <= 1 && prop <= 1 && cp <= 1 && cons <= 1
}

func modeHas(mode string, set map[string]bool) string {
	for _, o := range strings.Split(mode, ",") {
		if set[o] {
			return o
		}
	}
	return ""
}

func configError(typ string, err error) error {
	return fmt.Errorf("invalid mount config for type %q: %w", typ, err)
}

// validateTarget checks a destination: absolute, not "/", no NUL.
func validateTarget(dst string) error {
	switch {
	case dst == "":
		return errors.New("field Target must not be empty")
	case strings.ContainsRune(dst, 0):
		return fmt.Errorf("invalid mount path: %q", dst)
	case !path.IsAbs(dst):
		return fmt.Errorf("invalid mount path: '%s' mount path must be absolute", dst)
	case path.Clean(dst) == "/":
		return errors.New("invalid specification: destination can't be '/'")
	}
	return nil
}

// ParseVolume parses a -v value with Docker's rules: "/host:/ctr[:opts]" (a bind),
// "name:/ctr[:opts]" (a named volume), "/ctr" (an anonymous volume). Options: ro|rw,
// z|Z (ignored), a propagation (binds), nocopy (volumes), a consistency (ignored). A
// relative host path is taken as a volume name, and refused as one.
func ParseVolume(raw string) (Mount, error) {
	invalid := func() error { return fmt.Errorf("invalid volume specification: '%s'", raw) }
	if raw == "" || strings.ContainsRune(raw, 0) {
		return Mount{}, invalid()
	}
	arr := strings.Split(raw, ":")
	var m Mount
	switch len(arr) {
	case 1:
		m.Target = arr[0]
	case 2:
		if validMode(arr[1]) {
			// "/foo:rw": a destination with a mode is not a volume.
			return Mount{}, invalid()
		}
		m.Source, m.Target = arr[0], arr[1]
	case 3:
		m.Source, m.Target, m.Mode = arr[0], arr[1], arr[2]
		if !validMode(m.Mode) {
			return Mount{}, fmt.Errorf("invalid mode: %s", m.Mode)
		}
	default:
		return Mount{}, invalid()
	}
	if len(arr) > 1 && m.Source == "" {
		return Mount{}, invalid()
	}
	m.Type = TypeVolume
	if path.IsAbs(m.Source) {
		m.Type = TypeBind
	}
	if err := validateTarget(m.Target); err != nil {
		return Mount{}, fmt.Errorf("invalid volume specification: '%s': %w", raw, configError(m.Type, err))
	}
	m.Target = path.Clean(m.Target)
	m.ReadOnly = modeHas(m.Mode, rwModes) == "ro"
	if p := modeHas(m.Mode, propagationModes); p != "" {
		if m.Type != TypeBind {
			return Mount{}, fmt.Errorf("invalid volume specification: '%s': %w", raw, configError(m.Type, errors.New("field BindOptions must not be specified")))
		}
		m.Propagation = p
	}
	if modeHas(m.Mode, map[string]bool{"nocopy": true}) != "" {
		if m.Type != TypeVolume {
			return Mount{}, fmt.Errorf("invalid volume specification: '%s': %w", raw, configError(m.Type, errors.New("field VolumeOptions must not be specified")))
		}
		m.NoCopy = true
	}
	switch m.Type {
	case TypeBind:
		m.Source = path.Clean(m.Source)
		m.Bind = raw
	case TypeVolume:
		if m.Source != "" {
			if err := ValidateName(m.Source); err != nil {
				return Mount{}, fmt.Errorf("create %s: %w", m.Source, err)
			}
			m.Bind = raw
		}
	}
	return m, nil
}

// ParseMount parses a --mount value (comma-separated key=value fields, as docker's CLI):
// type=bind|volume|tmpfs (default volume), source|src, target|dst|destination,
// readonly|ro[=bool], bind-propagation, bind-recursive=enabled (the default),
// volume-nocopy[=bool], volume-label=K=V, volume-driver=local, tmpfs-size, tmpfs-mode
// (octal), consistency (ignored). Errors read as pflag's:
// `invalid argument "…" for "--mount" flag: …`.
func ParseMount(raw string) (Mount, error) {
	m, err := parseMount(raw)
	if err != nil {
		return Mount{}, fmt.Errorf("invalid argument %q for \"--mount\" flag: %w", raw, err)
	}
	return m, nil
}

func parseMount(raw string) (Mount, error) {
	r := csv.NewReader(strings.NewReader(raw))
	fields, err := r.Read()
	if err != nil {
		return Mount{}, err
	}
	var m Mount
	var volOpts, bindOpts, tmpfsOpts bool
	for _, field := range fields {
		key, val, ok := strings.Cut(field, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok {
			switch key {
			case "readonly", "ro":
				m.ReadOnly = true
				continue
			case "volume-nocopy":
				m.NoCopy, volOpts = true, true
				continue
			default:
				return Mount{}, fmt.Errorf("invalid field '%s' must be a key=value pair", field)
			}
		}
		switch key {
		case "type":
			m.Type = strings.ToLower(val)
		case "source", "src":
			m.Source = val
		case "target", "dst", "destination":
			m.Target = val
		case "readonly", "ro":
			if m.ReadOnly, err = strconv.ParseBool(val); err != nil {
				return Mount{}, fmt.Errorf("invalid value for %s: %s", key, val)
			}
		case "consistency":
			if !consistencyModes[val] {
				return Mount{}, fmt.Errorf("invalid value for %s: %s", key, val)
			}
		case "bind-propagation":
			if !propagationModes[val] {
				return Mount{}, fmt.Errorf("invalid value for %s: %s", key, val)
			}
			m.Propagation, bindOpts = val, true
		case "bind-recursive":
			if val != "enabled" {
				return Mount{}, fmt.Errorf("invalid value for %s: %s (only \"enabled\" is supported)", key, val)
			}
			bindOpts = true
		case "volume-nocopy":
			if m.NoCopy, err = strconv.ParseBool(val); err != nil {
				return Mount{}, fmt.Errorf("invalid value for volume-nocopy: %s", val)
			}
			volOpts = true
		case "volume-label":
			k, v, _ := strings.Cut(val, "=")
			if k == "" {
				return Mount{}, fmt.Errorf("invalid value for %s: %s", key, val)
			}
			if m.Labels == nil {
				m.Labels = map[string]string{}
			}
			m.Labels[k], volOpts = v, true
		case "volume-driver":
			if val != DriverLocal {
				return Mount{}, fmt.Errorf("volume driver %q is not supported: only %q", val, DriverLocal)
			}
			volOpts = true
		case "volume-opt":
			return Mount{}, fmt.Errorf("volume-opt is not supported by the %q driver of pull-run", DriverLocal)
		case "tmpfs-size":
			n, err := cgroups.ParseSize(val)
			if err != nil || n < 0 {
				return Mount{}, fmt.Errorf("invalid value for %s: %s", key, val)
			}
			m.TmpfsSize, tmpfsOpts = n, true
		case "tmpfs-mode":
			u, err := strconv.ParseUint(val, 8, 32)
			if err != nil || u > 0o7777 {
				return Mount{}, fmt.Errorf("invalid value for %s: %s", key, val)
			}
			m.TmpfsMode, tmpfsOpts = os.FileMode(u), true
		default:
			return Mount{}, fmt.Errorf("unexpected key '%s' in '%s'", key, field)
		}
	}
	if m.Type == "" {
		m.Type = TypeVolume
	}
	switch {
	case volOpts && m.Type != TypeVolume:
		return Mount{}, fmt.Errorf("cannot mix 'volume-*' options with mount type '%s'", m.Type)
	case bindOpts && m.Type != TypeBind:
		return Mount{}, fmt.Errorf("cannot mix 'bind-*' options with mount type '%s'", m.Type)
	case tmpfsOpts && m.Type != TypeTmpfs:
		return Mount{}, fmt.Errorf("cannot mix 'tmpfs-*' options with mount type '%s'", m.Type)
	}
	if err := validateTarget(m.Target); err != nil {
		return Mount{}, configError(m.Type, err)
	}
	m.Target = path.Clean(m.Target)
	switch m.Type {
	case TypeBind:
		if m.Source == "" {
			return Mount{}, configError(m.Type, errors.New("field Source must not be empty"))
		}
		if !path.IsAbs(m.Source) || strings.ContainsRune(m.Source, 0) {
			return Mount{}, configError(m.Type, fmt.Errorf("invalid mount path: '%s' mount path must be absolute", m.Source))
		}
		m.Source = path.Clean(m.Source)
	case TypeVolume:
		if m.Source != "" {
			if err := ValidateName(m.Source); err != nil {
				return Mount{}, fmt.Errorf("create %s: %w", m.Source, err)
			}
		}
	case TypeTmpfs:
		if m.Source != "" {
			return Mount{}, configError(m.Type, errors.New("field Source must not be specified"))
		}
	default:
		return Mount{}, configError(m.Type, errors.New("mount type unknown"))
	}
	return m, nil
}

// CheckBindSource refuses a bind whose host path does not exist (Berth never creates
// host paths, for -v too): Docker's --mount message.
func CheckBindSource(m Mount) error {
	if m.Type != TypeBind {
		return nil
	}
	if _, err := os.Stat(m.Source); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return configError(m.Type, fmt.Errorf("bind source path does not exist: %s", m.Source))
		}
		return configError(m.Type, fmt.Errorf("bind source path %s: %w", m.Source, err))
	}
	return nil
}

// ParseVolumesFrom parses a --volumes-from value, "CONTAINER[:ro|:rw]": the container and
// the mode ("" keeps each mount's own).
func ParseVolumesFrom(raw string) (name, mode string, err error) {
	name, mode, _ = strings.Cut(raw, ":")
	if name == "" {
		return "", "", fmt.Errorf("malformed volumes-from specification: %q", raw)
	}
	if !validMode(mode) {
		return "", "", fmt.Errorf("invalid mode: %s", mode)
	}
	if modeHas(mode, propagationModes) != "" {
		return "", "", fmt.Errorf("invalid argument %q: can not use propagation properties while importing volumes from a container", raw)
	}
	if modeHas(mode, map[string]bool{"nocopy": true}) != "" {
		return "", "", fmt.Errorf("invalid mode: %s", mode)
	}
	return name, mode, nil
}

// SpecMount is the runtime mount of m, whose host source (a bind's path, a volume's data
// directory) is source.
func (m Mount) SpecMount(source string) specs.Mount {
	if m.Type == TypeTmpfs {
		opts := []string{"noexec", "nosuid", "nodev", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		if m.TmpfsSize > 0 {
			opts = append(opts, "size="+strconv.FormatInt(m.TmpfsSize, 10))
		}
		if m.TmpfsMode != 0 {
			opts = append(opts, "mode="+strconv.FormatUint(uint64(m.TmpfsMode), 8))
		}
		return specs.Mount{Destination: m.Target, Type: "tmpfs", Source: "tmpfs", Options: opts}
	}
	opts := []string{"rbind"}
	if m.ReadOnly {
		opts = append(opts, "ro")
	}
	prop := m.Propagation
	if prop == "" {
		prop = "rprivate"
	}
	opts = append(opts, prop)
	return specs.Mount{Destination: m.Target, Type: "bind", Source: source, Options: opts}
}

// MountPoint is m as inspect shows it; source as for SpecMount.
func (m Mount) MountPoint(source string) container.MountPoint {
	mp := container.MountPoint{Type: m.Type, Source: source, Destination: m.Target, Mode: m.Mode, RW: !m.ReadOnly}
	switch m.Type {
	case TypeBind:
		mp.Propagation = m.Propagation
		if mp.Propagation == "" {
			mp.Propagation = "rprivate"
		}
	case TypeVolume:
		mp.Name, mp.Driver = m.Source, DriverLocal
	case TypeTmpfs:
		mp.Source = ""
	}
	return mp
}
