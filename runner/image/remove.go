package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berth-registry/berth/registry/client"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// DeleteItem is one line of what Remove and Prune did, in the shape of Docker's
// ImageDeleteResponseItem: a reference untagged ("busybox:latest") or an image or layer
// deleted ("sha256:…"; for layers, the chain ID of the freed snapshot, as Docker prints).
type DeleteItem struct {
	Untagged string `json:"Untagged,omitempty"`
	Deleted  string `json:"Deleted,omitempty"`
}

// PruneReport is what Prune removed.
type PruneReport struct {
	ImagesDeleted  []DeleteItem
	SpaceReclaimed int64
}

// Familiar returns the short form Docker shows of a normalised reference string
// ("docker.io/library/busybox:latest" → "busybox:latest").
func Familiar(ref string) string {
	r, err := client.ParseReference(ref)
	if err != nil {
		return ref
	}
	return r.Familiar()
}

func (s *Store) inUse(id digest.Digest) (bool, error) {
	if s.opts.InUse == nil {
		return false, nil
	}
	used, err := s.opts.InUse(id)
	if err != nil {
		return false, fmt.Errorf("checking whether image %s is in use: %w", ShortDigest(id), err)
	}
	return used, nil
}

// isSingleReference reports whether refs are all in one repository with at most one tag
// (Docker's rule for removing an image by ID without force).
func isSingleReference(refs []string) bool {
	if len(refs) <= 1 {
		return len(refs) == 1
	}
	single := ""
	canonical := map[string]bool{}
	for _, r := range refs {
		if strings.Contains(r, "@") {
			canonical[refName(r)] = true
		} else if single == "" {
			single = r
		} else {
			return false
		}
	}
	if single == "" {
		single = refs[0]
	}
	return len(canonical) == 1 && canonical[refName(single)]
}

// Remove removes ref (Docker's rmi): a reference (tag or digest) is untagged, and the image
// is deleted when no reference remains; an image ID deletes the image with all its
// references (which must then be in one repository unless force). An image used by a
// container is refused unless force; with force its references are removed but the image
// itself stays (dangling) while the container uses it, so that the container's layers stay.
// Snapshots and content that no remaining image uses are freed; freed snapshots are listed
// as Deleted items after the image. Errors wrap ErrNotFound, ErrAmbiguous or ErrConflict.
func (s *Store) Remove(ref string, force bool) ([]DeleteItem, error) {
	unlock, err := s.lock(true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	img, matched, err := st.lookup(ref)
	if err != nil {
		return nil, err
	}
	used, err := s.inUse(img.ID)
	if err != nil {
		return nil, err
	}
	refs := st.refsOf(img.ID)
	var items []DeleteItem
	untag := func(r string) {
		if st.deleteRef(r) {
			items = append(items, DeleteItem{Untagged: Familiar(r)})
		}
	}
	if matched != "" {
		if !force && used && isSingleReference(refs) {
			return nil, fmt.Errorf("%w: unable to remove repository reference %q (must force) - container is using its referenced image %s",
				ErrConflict, ref, img.ShortID())
		}
		untag(matched)
		if !strings.Contains(matched, "@") {
			// The last tag of a repository takes the repository's digest references along.
			name := refName(matched)
			rest := st.refsOf(img.ID)
			hasTag := slices.ContainsFunc(rest, func(r string) bool { return !strings.Contains(r, "@") && refName(r) == name })
			if !hasTag {
				for _, r := range rest {
					if strings.Contains(r, "@") && refName(r) == name {
						untag(r)
					}
				}
			}
		}
		if len(st.refsOf(img.ID)) > 0 || used {
			return items, s.writeRefs(st)
		}
	} else {
		if !force && len(refs) > 1 && !isSingleReference(refs) {
			return nil, fmt.Errorf("%w: unable to delete %s (must be forced) - image is referenced in multiple repositories", ErrConflict, img.ShortID())
		}
		if !force && used {
			return nil, fmt.Errorf("%w: unable to delete %s (must be forced) - image is being used by a container", ErrConflict, img.ShortID())
		}
		for _, r := range refs {
			untag(r)
		}
		if used {
			return items, s.writeRefs(st)
		}
	}
	del, _, err := s.deleteImages(st, []*Image{img})
	return append(items, del...), err
}

// deleteImages deletes image records (whose references are already gone from st), writes
// the references and frees what nothing uses any more.
func (s *Store) deleteImages(st *state, imgs []*Image) ([]DeleteItem, int64, error) {
	var items []DeleteItem
	sizes := map[digest.Digest]int64{}
	var order []digest.Digest
	for _, img := range imgs {
		for _, l := range img.Layers {
			sizes[l.ChainID] = l.UnpackedSize
		}
		for i := len(img.Layers) - 1; i >= 0; i-- {
			order = append(order, img.Layers[i].ChainID)
		}
	}
	if err := s.writeRefs(st); err != nil {
		return nil, 0, err
	}
	for _, img := range imgs {
		if err := os.Remove(s.recordPath(img.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return items, 0, err
		}
		delete(st.images, img.ID)
		items = append(items, DeleteItem{Deleted: img.ID.String()})
	}
	freed, n, err := s.collect(st, sizes, order)
	for _, c := range freed {
		items = append(items, DeleteItem{Deleted: c.String()})
	}
	return items, n, err
}

// collect frees the snapshots and content that no image record and no live pull uses.
// It runs under the exclusive store lock. It returns the freed chain IDs (those of order
// first, in that order) and the bytes reclaimed.
func (s *Store) collect(st *state, sizes map[digest.Digest]int64, order []digest.Digest) ([]digest.Digest, int64, error) {
	u, err := s.used(st)
	if err != nil {
		return nil, 0, err
	}
	usedChains, usedContent := u.chains, u.content
	s.cleanTmp()
	infos, err := s.snaps.List()
	if err != nil {
		return nil, 0, err
	}
	var unused []digest.Digest
	for _, info := range infos {
		if !usedChains[info.ChainID] {
			unused = append(unused, info.ChainID)
		}
	}
	// Report in the removed images' order (top layer first), then the rest.
	slices.SortStableFunc(unused, func(a, b digest.Digest) int {
		ia, ib := slices.Index(order, a), slices.Index(order, b)
		if ia < 0 {
			ia = len(order)
		}
		if ib < 0 {
			ib = len(order)
		}
		return ia - ib
	})
	var freed []digest.Digest
	var reclaimed int64
	var firstErr error
	for _, c := range unused {
		size, ok := sizes[c]
		if !ok || size < 0 {
			if u, err := s.snaps.Usage(c); err == nil {
				size = u.Size
			}
		}
		if err := s.snaps.Remove(c); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("removing snapshot %s: %w", c, err)
			}
			continue
		}
		freed = append(freed, c)
		reclaimed += size
	}
	// Content (manifests, indexes, configs, kept layer blobs).
	cdir := filepath.Join(s.root, "content", "sha256")
	ents, err := os.ReadDir(cdir)
	if err != nil {
		return freed, reclaimed, err
	}
	for _, e := range ents {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() == nil && usedContent[d] {
			continue
		}
		if err := os.Remove(filepath.Join(cdir, e.Name())); err != nil && firstErr == nil && !errors.Is(err, fs.ErrNotExist) {
			firstErr = err
		}
	}
	return freed, reclaimed, firstErr
}

// Prune removes dangling images (without tags) or, with all, every image no container
// uses, and frees their snapshots (Docker's `image prune [-a]`).
func (s *Store) Prune(all bool) (PruneReport, error) {
	var rep PruneReport
	unlock, err := s.lock(true)
	if err != nil {
		return rep, err
	}
	defer unlock()
	st, err := s.load()
	if err != nil {
		return rep, err
	}
	var victims []*Image
	ids := make([]digest.Digest, 0, len(st.images))
	for id := range st.images {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		img := st.images[id]
		if !all && len(img.RepoTags) > 0 {
			continue
		}
		used, err := s.inUse(id)
		if err != nil {
			return rep, err
		}
		if used {
			continue
		}
		for _, r := range st.refsOf(id) {
			if st.deleteRef(r) {
				rep.ImagesDeleted = append(rep.ImagesDeleted, DeleteItem{Untagged: Familiar(r)})
			}
		}
		victims = append(victims, img)
	}
	if len(victims) == 0 {
		// Still free what dead pulls left behind.
		_, n, err := s.collect(st, nil, nil)
		rep.SpaceReclaimed = n
		return rep, err
	}
	del, n, err := s.deleteImages(st, victims)
	rep.ImagesDeleted = append(rep.ImagesDeleted, del...)
	rep.SpaceReclaimed = n
	return rep, err
}

// contentSize adds up the sizes of the regular files under dir (hardlinks once), the size
// Docker shows for a layer.
func contentSize(dir string) (int64, error) {
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Size
		return nil
	})
	return total, err
}
