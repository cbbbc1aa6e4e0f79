package network

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
)

// fakePlane is an in-memory dataplane: links by name with their alias, rules by bridge.
type fakePlane struct {
	mu       sync.Mutex
	host     []hostNet
	links    map[string]string // name -> alias
	rules    map[string]string // bridge -> tag
	failAdd  error             // addEndpoint fails with it
	veths    int
	netnsArg []string
}

func newFakePlane(hostRoutes ...string) *fakePlane {
	f := &fakePlane{links: map[string]string{}, rules: map[string]string{}}
	for _, r := range hostRoutes {
		_, n, err := net.ParseCIDR(r)
		if err != nil {
			panic(err)
		}
		f.host = append(f.host, hostNet{usedNet: usedNet{Net: n, What: "route " + r + " dev eth9"}, Link: "eth9"})
	}
	return f
}

func (f *fakePlane) hostNets() ([]hostNet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]hostNet(nil), f.host...), nil
}

func (f *fakePlane) linkExists(name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.links[name]
	return ok, nil
}

func (f *fakePlane) createBridge(n *Network, tag string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.links[n.Bridge]; ok {
		return errors.New("file exists")
	}
	f.links[n.Bridge] = tag
	_, sub, _ := net.ParseCIDR(n.Subnet)
	f.host = append(f.host, hostNet{usedNet: usedNet{Net: sub, What: "route " + n.Subnet + " dev " + n.Bridge}, Link: n.Bridge})
	return nil
}

func (f *fakePlane) deleteLink(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.links, name)
	var keep []hostNet
	for _, h := range f.host {
		if h.Link != name {
			keep = append(keep, h)
		}
	}
	f.host = keep
	return nil
}

func (f *fakePlane) addEndpoint(n *Network, e *Endpoint, netnsPath string, defaultRoute bool, tag string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAdd != nil {
		return f.failAdd
	}
	f.veths++
	e.HostIfName = fmt.Sprintf("vethfake%03d", f.veths)
	f.links[e.HostIfName] = tag
	f.netnsArg = append(f.netnsArg, netnsPath)
	return nil
}

func (f *fakePlane) taggedLinks(tag string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n, a := range f.links {
		if a == tag {
			out = append(out, n)
		}
	}
	return out, nil
}

func (f *fakePlane) setupNAT(n *Network, tag string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[n.Bridge] = tag
	return nil
}

func (f *fakePlane) teardownNAT(n *Network, tag string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.rules, n.Bridge)
	return nil
}

func (f *fakePlane) cleanupNAT(tag string, keep map[string]bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for br, t := range f.rules {
		if t == tag && !keep[br] {
			delete(f.rules, br)
		}
	}
	return nil
}

// openFake opens a store on a temporary root with a fake dataplane.
func openFake(t *testing.T, f *fakePlane) *Store {
	t.Helper()
	dir := t.TempDir()
	s, err := open(dir+"/root", dir+"/run", f, dir+"/host.lock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
