package network

import (
	"slices"
	"strings"
	"testing"
)

func TestNetworkRules(t *testing.T) {
	n := &Network{Bridge: "br-abc", Subnet: "10.1.0.0/16"}
	var got []string
	for _, r := range networkRules(n, "berth:t") {
		got = append(got, strings.Join(r.cmd("-A"), " "))
	}
	want := []string{
		"-t filter -A BERTH-FORWARD -i br-abc ! -o br-abc -j BERTH-ISOLATION -m comment --comment berth:t",
		"-t filter -A BERTH-ISOLATION -o br-abc -j DROP -m comment --comment berth:t",
		"-t filter -A BERTH-FORWARD -i br-abc -o br-abc -j ACCEPT -m comment --comment berth:t",
		"-t filter -A BERTH-FORWARD -i br-abc ! -o br-abc -j ACCEPT -m comment --comment berth:t",
		"-t filter -A BERTH-FORWARD -o br-abc -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT -m comment --comment berth:t",
		"-t nat -A POSTROUTING -s 10.1.0.0/16 ! -o br-abc -j MASQUERADE -m comment --comment berth:t",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules:\n%s", strings.Join(got, "\n"))
	}
	var nftGot []string
	for _, r := range nftRules(n, "berth:t") {
		nftGot = append(nftGot, r[0]+": "+r[1])
	}
	if !slices.Contains(nftGot, `forward: iifname "br-abc" oifname != "br-abc" jump isolation comment "berth:t"`) ||
		!slices.Contains(nftGot, `isolation: oifname "br-abc" drop comment "berth:t"`) {
		t.Errorf("nft rules lack the isolation of other networks:\n%s", strings.Join(nftGot, "\n"))
	}
	n.Internal = true
	for _, r := range networkRules(n, "berth:t") {
		if r.table == "nat" || (strings.Contains(strings.Join(r.args, " "), "! -o br-abc") && !strings.Contains(strings.Join(r.args, " "), "DROP") && !strings.Contains(strings.Join(r.args, " "), isolationChain)) {
			t.Errorf("internal network rule %v", r)
		}
	}
	for _, r := range nftRules(n, "berth:t") {
		if r[0] == "postrouting" || strings.Contains(r[1], "accept") && strings.Contains(r[1], "!=") {
			t.Errorf("internal network nft rule %v", r)
		}
	}
}

func TestRuleParsing(t *testing.T) {
	line := `-A POSTROUTING -s 10.1.0.0/16 ! -o br-abc -m comment --comment "berth:t" -j MASQUERADE`
	fields := strings.Fields(strings.ReplaceAll(line, `"`, ""))
	if !taggedRule(fields, "berth:t") || taggedRule(fields, "berth:u") || ruleBridge(fields) != "br-abc" {
		t.Errorf("iptables line %q: tagged %v bridge %q", line, taggedRule(fields, "berth:t"), ruleBridge(fields))
	}
	nftLine := `		ip saddr 10.1.0.0/16 oifname != "br-abc" masquerade comment "berth:t" # handle 14`
	if h := nftHandle.FindStringSubmatch(nftLine); h == nil || h[1] != "14" {
		t.Errorf("nft handle of %q: %v", nftLine, h)
	}
	if m := nftIf.FindStringSubmatch(nftLine); m == nil || m[1] != "br-abc" {
		t.Errorf("nft bridge of %q: %v", nftLine, m)
	}
}
