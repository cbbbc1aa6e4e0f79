package snapshot

import (
	digest "github.com/opencontainers/go-digest"
)

// ChainID returns the chain ID of a stack of layers given by their DiffIDs, bottom layer
// first (the order of an image config's rootfs.diff_ids), as the OCI image spec defines it:
//
//	ChainID(L₀) = DiffID(L₀)
//	ChainID(L₀|…|Lₙ) = sha256(ChainID(L₀|…|Lₙ₋₁) + " " + DiffID(Lₙ))
//
// It returns "" for no layers.
func ChainID(diffIDs []digest.Digest) digest.Digest {
	var chain digest.Digest
	for i, d := range diffIDs {
		if i == 0 {
			chain = d
			continue
		}
		chain = digest.FromString(chain.String() + " " + d.String())
	}
	return chain
}

// ChainIDs returns the chain ID of every prefix of diffIDs: element i is
// ChainID(diffIDs[:i+1]), the key of layer i's snapshot.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
		} else {
			out[i] = digest.FromString(out[i-1].String() + " " + d.String())
		}
	}
	return out
}
