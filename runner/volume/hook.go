package volume

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/berth-registry/berth/runner/container"
)

// HookName is the container hook of volumes (container.RegisterHook).
const HookName = "volume"

// HookData is the hook's data in a container's config: the state root of the volume store
// (the hook runs in whichever process removes the container) and the volumes the
// container references.
type HookData struct {
	Root    string   `json:"Root"`
	Volumes []string `json:"Volumes"`
}

// HookRef is the container hook reference for the volumes names of the store s.
func (s *Store) HookRef(names []string) (container.HookRef, error) {
	b, err := json.Marshal(HookData{Root: s.stateRoot, Volumes: names})
	if err != nil {
		return container.HookRef{}, err
	}
	return container.HookRef{Name: HookName, Data: b}, nil
}

func init() {
	container.RegisterHook(HookName, container.Hook{Remove: removeHook})
}

// removeHook drops the removed container's references; with volumes (rm -v, --rm) its
// anonymous volumes that no other container uses are removed too, as Docker does.
func removeHook(env container.HookEnv, volumes bool) error {
	var d HookData
	if err := json.Unmarshal(env.Data, &d); err != nil {
		return fmt.Errorf("volume hook data: %w", err)
	}
	if d.Root == "" || len(d.Volumes) == 0 {
		return nil
	}
	s, err := Open(d.Root)
	if err != nil {
		return err
	}
	return s.Release(context.Background(), d.Volumes, env.ID, volumes)
}
