package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// DefaultRoot is pull-run's default state root: its default bridge is named berth0.
const DefaultRoot = "/var/lib/berth"

// hostLockPath is the host-wide lock for subnet choice and iptables.
const hostLockPath = "/run/lock/berth-network.lock"

// Store is the network state of one state root. It is safe for concurrent use by
// goroutines and by processes.
type Store struct {
	root, runRoot string
	dir           string
	tag           string // "berth:" + 8 hex of sha256(root): link aliases, rule comments
	defaultBridge string
	hostLock      string
	dp            dataplane

	mu   sync.Mutex // serialises this process's users of lockf (flock is per open file)
	lock *os.File

	resolveMu sync.Mutex
	resolve   resolveCache
}

// Open opens the network state of a state root, kept in <stateRoot>/network. runRoot (the
// runtime directory) is accepted like the other stores' but holds nothing of the network
// state: it all lives in the state root, so that Cleanup finds what a crash or a reboot left.
// Any number of processes may open the same root at once.
func Open(stateRoot, runRoot string) (*Store, error) {
	return open(stateRoot, runRoot, netlinkPlane{}, hostLockPath)
}

func open(stateRoot, runRoot string, dp dataplane, hostLock string) (*Store, error) {
	abs, err := filepath.Abs(stateRoot)
	if err != nil {
		return nil, fmt.Errorf("network state root: %w", err)
	}
	abs = filepath.Clean(abs)
	dir := filepath.Join(abs, "network")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("network state: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network state lock: %w", err)
	}
	sum := sha256.Sum256([]byte(abs))
	h8 := hex.EncodeToString(sum[:])[:8]
	s := &Store{
		root: abs, runRoot: runRoot, dir: dir, tag: "berth:" + h8,
		defaultBridge: "berth-" + h8,
		hostLock:      hostLock, dp: dp, lock: lf,
	}
	if abs == DefaultRoot {
		s.defaultBridge = "berth0"
	}
	return s, nil
}

// Close releases the store's lock file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

// DefaultBridge is the name of the default network's bridge for this state root.
func (s *Store) DefaultBridge() string { return s.defaultBridge }

func (s *Store) statePath() string { return filepath.Join(s.dir, stateFile) }

// update runs fn on the state under the root's lock and writes the state back when fn
// reports a change (also when fn fails: a failing operation may have freed dead endpoints).
func (s *Store) update(fn func(st *state) (changed bool, err error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return errors.New("network store is closed")
	}
	if err := flock(s.lock); err != nil {
		return fmt.Errorf("lock network state: %w", err)
	}
	defer funlock(s.lock)
	st, err := readState(s.statePath())
	if err != nil {
		return err
	}
	changed := s.ensurePredefined(st)
	c, err := fn(st)
	if c || changed {
		if werr := writeState(s.statePath(), st); werr != nil {
			return errors.Join(err, werr)
		}
	}
	return err
}

// upBridge creates n's bridge and its forwarding and NAT rules; when a step fails, it
// leaves neither. The caller holds the host lock.
func (s *Store) upBridge(n *Network) error {
	if err := s.dp.createBridge(n, s.tag); err != nil {
		return fmt.Errorf("create bridge %s: %w", n.Bridge, err)
	}
	if err := s.dp.setupNAT(n, s.tag); err != nil {
		s.downBridge(n)
		return err
	}
	return nil
}

// downBridge deletes n's rules and bridge. The caller holds the host lock.
func (s *Store) downBridge(n *Network) error {
	return errors.Join(s.dp.teardownNAT(n, s.tag), s.dp.deleteLink(n.Bridge))
}

// withHostLock runs fn under the host-wide network lock.
func (s *Store) withHostLock(fn func() error) error {
	if err := os.MkdirAll(filepath.Dir(s.hostLock), 0o755); err != nil {
		return fmt.Errorf("host network lock: %w", err)
	}
	f, err := os.OpenFile(s.hostLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("host network lock: %w", err)
	}
	defer f.Close()
	if err := flock(f); err != nil {
		return fmt.Errorf("host network lock: %w", err)
	}
	defer funlock(f)
	return fn()
}

// ensurePredefined adds the bridge, host and none networks to a state that lacks them.
func (s *Store) ensurePredefined(st *state) bool {
	changed := false
	have := map[string]bool{}
	for _, sn := range st.Networks {
		if sn.Network.Default {
			have[DefaultNetwork] = true
			if sn.Network.Bridge != s.defaultBridge { // the root moved: its bridge name follows
				sn.Network.Bridge = s.defaultBridge
				changed = true
			}
		}
		if sn.Network.Driver == DriverHost || sn.Network.Driver == DriverNull {
			have[sn.Network.Name] = true
		}
	}
	add := func(n Network) {
		n.ID, n.Created = newID(), now()
		n.Labels, n.Options = map[string]string{}, map[string]string{}
		st.Networks = append(st.Networks, &storedNetwork{Network: networkData(n)})
		changed = true
	}
	if !have[DefaultNetwork] {
		add(Network{Name: DefaultNetwork, Driver: DriverBridge, Default: true, Bridge: s.defaultBridge, MTU: 1500})
	}
	if !have[HostNetwork] {
		add(Network{Name: HostNetwork, Driver: DriverHost})
	}
	if !have[NoneNetwork] {
		add(Network{Name: NoneNetwork, Driver: DriverNull})
	}
	return changed
}

// find looks a network up by full ID, name, or unique ID prefix (Docker's order).
func (st *state) find(nameOrID string) (*storedNetwork, error) {
	if nameOrID == "" {
		return nil, newError(ErrNotFound, "network name or ID is empty")
	}
	for _, sn := range st.Networks {
		if sn.Network.ID == nameOrID {
			return sn, nil
		}
	}
	for _, sn := range st.Networks {
		if sn.Network.Name == nameOrID {
			return sn, nil
		}
	}
	var match []*storedNetwork
	for _, sn := range st.Networks {
		if strings.HasPrefix(sn.Network.ID, nameOrID) {
			match = append(match, sn)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return nil, newError(ErrNotFound, fmt.Sprintf("network %s not found", nameOrID))
	}
	return nil, newError(ErrInvalid, fmt.Sprintf("network %s is ambiguous (%d matches found based on ID prefix)", nameOrID, len(match)))
}

func (st *state) remove(sn *storedNetwork) {
	st.Networks = slices.DeleteFunc(st.Networks, func(x *storedNetwork) bool { return x == sn })
}

// sortedEndpoints returns the endpoints ordered by container name.
func (sn *storedNetwork) sortedEndpoints() []*Endpoint {
	eps := make([]*Endpoint, 0, len(sn.Endpoints))
	for _, e := range sn.Endpoints {
		eps = append(eps, e)
	}
	sort.Slice(eps, func(i, j int) bool {
		if eps[i].ContainerName != eps[j].ContainerName {
			return eps[i].ContainerName < eps[j].ContainerName
		}
		return eps[i].ContainerID < eps[j].ContainerID
	})
	return eps
}

// ---------------------------------------------------------------------------------------------
// Create

// Create creates a user-defined bridge network: its subnet (given, or the first of Docker's
// default pools that overlaps neither the host's routes and addresses nor this root's
// networks), its bridge with the gateway address, and its NAT and forwarding rules.
func (s *Store) Create(ctx context.Context, o CreateOptions) (*Network, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n, subnet, err := s.validateCreate(o)
	if err != nil {
		return nil, err
	}
	var out *Network
	err = s.update(func(st *state) (bool, error) {
		for _, sn := range st.Networks {
			if sn.Network.Name == n.Name {
				return false, newError(ErrConflict, fmt.Sprintf("network with name %s already exists", n.Name))
			}
		}
		err := s.withHostLock(func() error {
			used, err := s.usedNets(st, nil)
			if err != nil {
				return err
			}
			if subnet == nil {
				if subnet, err = chooseSubnet(used); err != nil {
					return err
				}
			} else if u, bad := conflict(subnet, used); bad {
				return newError(ErrConflict, fmt.Sprintf("Pool overlaps with other one on this address space: %s overlaps %s", subnet, u.What))
			}
			if err := finishAddresses(n, subnet, o); err != nil {
				return err
			}
			if exists, err := s.dp.linkExists(n.Bridge); err != nil {
				return err
			} else if exists {
				return newError(ErrConflict, fmt.Sprintf("bridge name %s is already in use on this host", n.Bridge))
			}
			return s.upBridge(n)
		})
		if err != nil {
			return false, err
		}
		st.Networks = append(st.Networks, &storedNetwork{Network: networkData(*n)})
		out = n
		return true, nil
	})
	if err != nil {
		// A state that could not be written must not keep the bridge.
		if out != nil {
			s.withHostLock(func() error { return s.downBridge(out) })
		}
		return nil, err
	}
	c := *out
	return &c, nil
}

// validateCreate checks the options that need no state and returns the network (without
// its addresses) and the parsed --subnet (nil when none).
func (s *Store) validateCreate(o CreateOptions) (*Network, *net.IPNet, error) {
	if o.Name == "" {
		return nil, nil, newError(ErrInvalid, "network name is empty")
	}
	if !validName.MatchString(o.Name) {
		return nil, nil, newError(ErrInvalid, fmt.Sprintf("invalid network name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", o.Name))
	}
	switch o.Driver {
	case "", DriverBridge:
	case DriverHost, DriverNull:
		return nil, nil, newError(ErrInvalid, fmt.Sprintf("only one instance of %q network is allowed", o.Driver))
	default:
		return nil, nil, newError(ErrInvalid, fmt.Sprintf("network driver %q is not supported: only %q", o.Driver, DriverBridge))
	}
	mtu := o.MTU
	if v, ok := o.Options[OptionMTU]; ok {
		m, err := strconv.Atoi(v)
		if err != nil {
			return nil, nil, newError(ErrInvalid, fmt.Sprintf("invalid %s value %q: not a number", OptionMTU, v))
		}
		if mtu == 0 {
			mtu = m
		}
	}
	if mtu == 0 {
		mtu = 1500
	}
	if mtu < 68 || mtu > 65535 {
		return nil, nil, newError(ErrInvalid, fmt.Sprintf("invalid MTU %d: must be between 68 and 65535", mtu))
	}
	var subnet *net.IPNet
	if o.Subnet != "" {
		var err error
		if subnet, err = parseSubnet(o.Subnet, "subnet"); err != nil {
			return nil, nil, err
		}
		if ones, _ := subnet.Mask.Size(); ones > 30 {
			return nil, nil, newError(ErrInvalid, fmt.Sprintf("invalid subnet %s: a bridge network needs a prefix of /30 or shorter", subnet))
		}
	} else if o.Gateway != "" || o.IPRange != "" {
		return nil, nil, newError(ErrInvalid, "every ip-range or gateway must have a corresponding subnet")
	}
	id := newID()
	bridge := "br-" + id[:12]
	if b, ok := o.Options[OptionBridgeName]; ok && b != "" {
		if len(b) > 15 || strings.ContainsAny(b, "/: \t\n") {
			return nil, nil, newError(ErrInvalid, fmt.Sprintf("invalid bridge name %q", b))
		}
		bridge = b
	}
	n := &Network{
		ID: id, Name: o.Name, Driver: DriverBridge, Bridge: bridge, MTU: mtu,
		Internal: o.Internal, Created: now(),
		Labels: copyMap(o.Labels), Options: copyMap(o.Options),
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	if n.Options == nil {
		n.Options = map[string]string{}
	}
	return n, subnet, nil
}

// finishAddresses sets the subnet, gateway and ip range of a new network.
func finishAddresses(n *Network, subnet *net.IPNet, o CreateOptions) error {
	gw := firstHost(subnet)
	if o.Gateway != "" {
		ip, err := parseIP4(o.Gateway, "gateway")
		if err != nil {
			return err
		}
		v, _ := ip4(ip)
		if !subnet.Contains(ip) {
			return newError(ErrInvalid, fmt.Sprintf("invalid gateway %s: not within subnet %s", ip, subnet))
		}
		if reserved(subnet, v) {
			return newError(ErrInvalid, fmt.Sprintf("invalid gateway %s: the network or broadcast address of %s", ip, subnet))
		}
		gw = ip
	}
	if o.IPRange != "" {
		r, err := parseSubnet(o.IPRange, "ip-range")
		if err != nil {
			return err
		}
		rf, rl := bounds(r)
		sf, sl := bounds(subnet)
		if rf < sf || rl > sl {
			return newError(ErrInvalid, fmt.Sprintf("invalid ip-range %s: not within subnet %s", r, subnet))
		}
		n.IPRange = r.String()
	}
	n.Subnet, n.Gateway = subnet.String(), gw.String()
	return nil
}

// usedNets lists what a new subnet must not overlap: this root's networks (except skip),
// then the host's routes and addresses (except those of skip's bridge).
func (s *Store) usedNets(st *state, skip *storedNetwork) ([]usedNet, error) {
	var used []usedNet
	for _, sn := range st.Networks {
		if sn == skip || sn.Network.Subnet == "" {
			continue
		}
		if _, n, err := net.ParseCIDR(sn.Network.Subnet); err == nil {
			used = append(used, usedNet{Net: n, What: fmt.Sprintf("network %q (%s)", sn.Network.Name, sn.Network.Subnet)})
		}
	}
	host, err := s.dp.hostNets()
	if err != nil {
		return nil, fmt.Errorf("read the host's routes: %w", err)
	}
	for _, u := range host {
		if skip != nil && u.Link == skip.Network.Bridge {
			continue
		}
		used = append(used, u.usedNet)
	}
	return used, nil
}

// ---------------------------------------------------------------------------------------------
// Lookup, List

// Lookup returns a network by full ID, name or unique ID prefix (in that order; "bridge" is
// the default network), with its live endpoints. Unknown: ErrNotFound, with Docker's
// "network NAME not found" as its message; a prefix of several IDs: ErrInvalid.
func (s *Store) Lookup(nameOrID string) (*Network, error) {
	var out *Network
	err := s.update(func(st *state) (bool, error) {
		sn, err := st.find(nameOrID)
		if err != nil {
			return false, err
		}
		out = sn.public()
		return false, nil
	})
	return out, err
}

// List returns every network of the root, the pre-defined bridge, host and none included,
// sorted by name, each with its live endpoints.
func (s *Store) List(ctx context.Context) ([]*Network, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*Network
	err := s.update(func(st *state) (bool, error) {
		for _, sn := range st.Networks {
			out = append(out, sn.public())
		}
		return false, nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// ContainerEndpoints lists the live endpoints of a container (full ID or name), ordered by
// network name.
func (s *Store) ContainerEndpoints(containerID string) ([]*Endpoint, error) {
	var out []*Endpoint
	err := s.update(func(st *state) (bool, error) {
		for _, sn := range st.Networks {
			if e := sn.endpointOf(containerID); e != nil && e.alive() {
				c := *e
				out = append(out, &c)
			}
		}
		return false, nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].NetworkName < out[j].NetworkName })
	return out, err
}

// NetworkEndpoints lists the live endpoints of a network, ordered by container name.
func (s *Store) NetworkEndpoints(nameOrID string) ([]*Endpoint, error) {
	n, err := s.Lookup(nameOrID)
	if err != nil {
		return nil, err
	}
	return n.Endpoints, nil
}

// endpointOf returns the endpoint of a container (full ID or name) on the network.
func (sn *storedNetwork) endpointOf(container string) *Endpoint {
	if e, ok := sn.Endpoints[container]; ok {
		return e
	}
	for _, e := range sn.Endpoints {
		if e.ContainerName == container && container != "" {
			return e
		}
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// Remove, Prune, Cleanup

// Remove removes a user-defined network: its bridge, its rules and its state. A network
// with live endpoints is refused (ErrInUse), as are the pre-defined ones (ErrInvalid).
func (s *Store) Remove(ctx context.Context, nameOrID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.update(func(st *state) (bool, error) {
		sn, err := st.find(nameOrID)
		if err != nil {
			return false, err
		}
		if sn.net().Predefined() {
			return false, newError(ErrInvalid, fmt.Sprintf("%s is a pre-defined network and cannot be removed", sn.Network.Name))
		}
		changed := s.freeDead(sn)
		if len(sn.Endpoints) > 0 {
			return changed, newError(ErrInUse, fmt.Sprintf("error while removing network: network %s id %s has active endpoints", sn.Network.Name, sn.Network.ID))
		}
		if err := s.removeNetwork(st, sn); err != nil {
			return changed, err
		}
		return true, nil
	})
}

// removeNetwork deletes a user network's rules and bridge and drops it from the state.
func (s *Store) removeNetwork(st *state, sn *storedNetwork) error {
	n := sn.net()
	if err := s.withHostLock(func() error { return s.downBridge(n) }); err != nil {
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	st.remove(sn)
	return nil
}

// freeDead frees the endpoints of sn whose owner is gone (their veth is deleted if it is
// still there). It reports whether it changed anything.
func (s *Store) freeDead(sn *storedNetwork) bool {
	changed := false
	for id, e := range sn.Endpoints {
		if e.alive() {
			continue
		}
		if err := s.dp.deleteLink(e.HostIfName); err != nil {
			slog.Warn("network: delete veth of a dead endpoint", "veth", e.HostIfName, "err", err)
			continue
		}
		slog.Debug("network: freed the endpoint of a dead container", "network", sn.Network.Name, "container", e.ContainerName, "ip", e.IP)
		delete(sn.Endpoints, id)
		changed = true
	}
	return changed
}

// Prune removes the user-defined networks without live endpoints, then Cleanup's orphans.
// It returns the names of the networks removed.
func (s *Store) Prune(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var removed []string
	err := s.update(func(st *state) (bool, error) {
		changed := false
		var errs []error
		for _, sn := range slices.Clone(st.Networks) {
			if sn.net().Predefined() {
				continue
			}
			if s.freeDead(sn) {
				changed = true
			}
			if len(sn.Endpoints) > 0 {
				continue
			}
			if err := s.removeNetwork(st, sn); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, sn.Network.Name)
			changed = true
		}
		c, err := s.cleanup(st)
		return changed || c, errors.Join(append(errs, err)...)
	})
	sort.Strings(removed)
	return removed, err
}

// Cleanup frees the endpoints whose owner process is dead, removes the default bridge (and
// its rules) when it has no endpoint left, and deletes the links and iptables rules this
// root made that no state names (what a crash left behind), publish rules of containers
// without a live endpoint included.
func (s *Store) Cleanup(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.update(func(st *state) (bool, error) { return s.cleanup(st) })
}

func (s *Store) cleanup(st *state) (bool, error) {
	changed := false
	keep := map[string]bool{}
	var errs []error
	for _, sn := range st.Networks {
		if sn.Network.Driver != DriverBridge {
			continue
		}
		if s.freeDead(sn) {
			changed = true
		}
		for _, e := range sn.Endpoints {
			keep[e.HostIfName] = true
		}
		if sn.Network.Default && len(sn.Endpoints) == 0 {
			// Its rules go below with the other orphans (keep does not name it).
			if err := s.dp.deleteLink(sn.Network.Bridge); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		keep[sn.Network.Bridge] = true
	}
	links, err := s.dp.taggedLinks(s.tag)
	if err != nil {
		errs = append(errs, err)
	}
	for _, l := range links {
		if keep[l] {
			continue
		}
		slog.Info("network: deleting an orphaned interface", "link", l)
		if err := s.dp.deleteLink(l); err != nil {
			errs = append(errs, err)
		}
	}
	err = s.withHostLock(func() error {
		var perr error
		if pp, ok := s.dp.(publishPlane); ok {
			// Publish rules of containers without a live endpoint (publish.go).
			perr = pp.cleanupPublish(s.tag, liveContainers(st))
		}
		return errors.Join(perr, s.dp.cleanupNAT(s.tag, keep))
	})
	if err != nil {
		errs = append(errs, err)
	}
	return changed, errors.Join(errs...)
}
