// Package network is pull-run's network layer for bridge networks: the default network
// ("bridge", Linux bridge berth0) and user-defined networks, each a Linux bridge with a
// subnet, an IPAM that never hands out an address twice, and outbound NAT; container
// endpoints are veth pairs with one end moved into the container's network namespace.
// The pseudo networks "host" and "none" are listed (as Docker's `network ls` does) but have
// no state of their own.
//
// # State
//
// Everything a state root knows about its networks lives in one JSON file,
// <root>/network/networks.json (networks, their endpoints and IPAM cursor), read and
// written under an exclusive flock of <root>/network/lock by every operation, so any number
// of pull-run processes can create, attach and detach at the same time. Writes are atomic
// (temporary file, fsync, rename), so readers that do not lock (Resolve, for the embedded
// DNS) always see a whole state.
//
// Choosing a subnet and touching iptables happen under a second, host-wide flock
// (/run/lock/berth-network.lock), so two state roots never pick the same subnet and never
// race on Berth's shared iptables chain. Lock order is always root lock, then host lock.
//
// # What Berth makes on the host, and how it finds it again
//
// Bridges are named "br-" + 12 hex of the network ID (user networks) and "berth0" or
// "berth-" + 8 hex of sha256(root) (the default network); host veths "veth" + 7 random hex.
// Each link carries the alias "berth:" + 8 hex of sha256(root), and each iptables rule the
// comment of the same tag, so Cleanup deletes what its own root made and no state names,
// and never what another root made. iptables rules: FORWARD jumps to BERTH-FORWARD (created
// with the first network, deleted with the last), which accepts traffic within each bridge
// and, unless the network is internal, out of it and back (dockerd may run with FORWARD
// policy DROP and br_netfilter); nat POSTROUTING masquerades each non-internal subnet out of
// other interfaces. A host without iptables gets the same rules from nft in Berth's own table
// "ip berth" (deleted with its last rule); a host with neither gets none, with a warning.
// BERTH_NETWORK_NAT=iptables|nft|none overrides the choice.
//
// # Endpoint liveness
//
// An endpoint belongs to its owner process (the container's init pid and its start time,
// field 22 of /proc/<pid>/stat). Once that process is gone the endpoint is dead: its address
// is reusable, Cleanup and Prune free it, and a full pool frees dead endpoints before failing.
//
// Network namespace work uses netlink handles opened in the target namespace
// (netlink.NewHandleAt): no OS thread of the process is ever left in another namespace.
package network
