package platform

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"fnkit.dev/fn/platform/supervise"
)

// StatusPath is where a running platform keeps its components' statuses.
func StatusPath(home string) string { return filepath.Join(home, "status.json") }

// Status is what a running platform says of its components.
type Status struct {
	Updated    time.Time          `json:"updated"`
	Components []supervise.Status `json:"components"`
}

// ReadStatus reads the components' statuses of the platform in home.
func ReadStatus(home string) (*Status, error) {
	b, err := os.ReadFile(StatusPath(home))
	if err != nil {
		return nil, err
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", StatusPath(home), err)
	}
	return &st, nil
}

// statusBoard keeps the components' statuses in StatusPath, rewritten (atomically) on every
// change, and logs each change with what happened.
type statusBoard struct {
	home string
	log  func(format string, args ...any)

	mu    sync.Mutex
	order []string
	byN   map[string]supervise.Status
}

func newStatusBoard(home string, log func(string, ...any)) *statusBoard {
	return &statusBoard{home: home, log: log, byN: map[string]supervise.Status{}}
}

// update records a component's status; why, when not "", is logged.
func (b *statusBoard) update(st supervise.Status, why string) {
	b.mu.Lock()
	if _, ok := b.byN[st.Name]; !ok {
		b.order = append(b.order, st.Name)
	}
	b.byN[st.Name] = st
	out := Status{Updated: time.Now()}
	for _, n := range b.order {
		out.Components = append(out.Components, b.byN[n])
	}
	data, _ := json.MarshalIndent(out, "", "  ")
	tmp := StatusPath(b.home) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err == nil {
		_ = os.Rename(tmp, StatusPath(b.home))
	}
	b.mu.Unlock()
	if why != "" && why != "started" {
		b.log("%s %s", st.Name, why)
	}
}
